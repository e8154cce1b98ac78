"""A small pool of daemon threads for uploads, downloads and merges.

Not ``concurrent.futures``: its threads are joined at interpreter exit, so one long upload would
hold a SIGTERM'd daemon past its stop timeout. Abandoning a step is safe: every step starts from a
persisted intent and is reconciled on the next start.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Hashable

from daemon.logs import get_logger

log = get_logger(__name__)


class Workers:
    def __init__(self, size: int, on_done: Callable[[], None]) -> None:
        self._tasks: queue.Queue[tuple[Hashable, Callable[[], None]] | None] = queue.Queue()
        self._busy: set[Hashable] = set()
        self._lock = threading.Lock()
        self._on_done = on_done
        self._threads = [
            threading.Thread(target=self._work, name=f"batchd-worker-{n}", daemon=True) for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, task: Callable[[], None]) -> bool:
        """Queue ``task`` unless a task with the same key is queued or running."""
        with self._lock:
            if key in self._busy:
                return False
            self._busy.add(key)
        self._tasks.put((key, task))
        return True

    def idle(self) -> bool:
        with self._lock:
            return not self._busy

    def stop(self, grace: float, force: threading.Event) -> None:
        """Let running tasks finish for up to ``grace`` seconds (or until forced), then leave them."""
        deadline = time.monotonic() + grace
        while not self.idle() and time.monotonic() < deadline and not force.wait(0.05):
            pass
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            key, task = item
            try:
                task()
            except Exception:
                log.exception("step_crashed", key=str(key))
            finally:
                with self._lock:
                    self._busy.discard(key)
                self._on_done()
