"""Signal handling: handlers only set flags; the main loop acts on them.

The first SIGTERM or SIGINT asks for a graceful stop; a second one forces it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from daemon.doorbell import RingingEvent


class StopFlags:
    def __init__(self) -> None:
        self.stop = RingingEvent()  # setting it also wakes the main loop's sleep (see doorbell)
        self.force = threading.Event()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.force.set()
        self.stop.set()


@contextmanager
def captured_signals(flags: StopFlags) -> Iterator[StopFlags]:
    """Install the handlers (main thread only) and restore the previous ones afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield flags
        return
    previous = {sig: signal.signal(sig, flags.handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flags
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
