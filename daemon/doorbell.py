"""A doorbell: how the main loop sleeps for as long as nothing happens, yet wakes at once for anything.

A self-pipe. Any thread rings it (a worker finished, the watcher saw a file, the stop flag was set),
and so may a signal handler: ``ring`` only writes one byte, which is safe where a lock is not. The
sleeper waits on the pipe with a timeout (its next timer), so an idle daemon makes no wake-ups of
its own between timers.

``RingingEvent`` is a ``threading.Event`` that also rings its doorbells when set: the stop flag is
one, so whoever sets it (the SIGTERM handler, a test, the heartbeat) wakes the main loop promptly.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
from collections.abc import Iterator


class Doorbell:
    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        # A step left running at shutdown may ring after close, when the descriptor's number may name
        # another file. Reentrant: a signal handler may ring while this thread is inside ring or close.
        self._lock = threading.RLock()
        self._closed = False

    def ring(self) -> None:
        with self._lock:
            if self._closed:
                return  # nobody is left to wake
            with contextlib.suppress(BlockingIOError):  # the pipe is full of rings: the sleeper wakes anyway
                os.write(self._write, b"\0")

    def wait(self, timeout: float | None) -> bool:
        """Sleep until rung or ``timeout`` seconds (None: no limit) passed; True if rung. Clears the rings."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        ready = poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999)))
        if not ready:
            return False
        self._drain()
        return True

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    @contextlib.contextmanager
    def rung_by_signals(self) -> Iterator[None]:
        """Let every signal ring the bell (signal.set_wakeup_fd; main thread only): the kernel may hand
        SIGTERM to any thread, and Python runs the handler only once the main thread wakes."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._read)
            os.close(self._write)


class RingingEvent(threading.Event):
    """A ``threading.Event`` that rings the doorbells attached to it when it is set."""

    def __init__(self) -> None:
        super().__init__()
        self._bells: list[Doorbell] = []

    def attach(self, bell: Doorbell) -> None:
        self._bells.append(bell)
        if self.is_set():
            bell.ring()

    def detach(self, bell: Doorbell) -> None:
        if bell in self._bells:
            self._bells.remove(bell)

    def set(self) -> None:
        super().set()
        for bell in list(self._bells):
            bell.ring()
