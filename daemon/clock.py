"""Where the time comes from: the wall clock in the daemon, a clock the test moves by hand in tests.

Components that apply timing rules (poll waits, back-offs, holds) take a ``Clock`` instead of reading
``time.time()`` themselves, so a test can drive them through hours of timing in microseconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as ``time.time()`` gives them."""
        ...

    def monotonic(self) -> float:
        """Seconds that never jump back (``time.monotonic()``): for how long something has lasted."""
        ...


class WallClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


WALL_CLOCK = WallClock()
