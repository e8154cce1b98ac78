"""The service's batch-creation rate limit: at most N creates per window (2,000 an hour on the real
service), a 429 with Retry-After beyond it. A refused create does not count."""

from __future__ import annotations

import math
from collections import deque

from daemon.emulator.errors import ApiError


class CreationLimit:
    def __init__(self, limit: int | None, window: float) -> None:
        self._limit = limit
        self._window = window
        self._times: deque[float] = deque()  # creation times within the window, oldest first

    def admit(self, now: float) -> None:
        """Count one create at ``now``, or raise the 429 the service answers when the limit is reached."""
        if self._limit is None:
            return
        self.check(now)
        self._times.append(now)

    def check(self, now: float) -> None:
        """Raise the 429 if a create at ``now`` would be refused, without counting one."""
        if self._limit is None:
            return
        while self._times and self._times[0] <= now - self._window:
            self._times.popleft()
        if len(self._times) >= self._limit:
            wait = self._times[0] + self._window - now
            raise ApiError(
                429,
                f"Rate limit reached for batch creations: limit {self._limit} per {self._window:g} s. "
                f"Please try again in {wait:.1f}s.",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
