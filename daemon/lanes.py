"""Lanes: the worker threads split by kind of work, so no kind can take every thread.

With one pool, a 2 GB input's split and uploads (minutes) held every worker, and small inputs
dropped meanwhile waited for them; a burst of downloads and merges could do the same to
submission, and the reverse. Each lane is a pool of its own (see workers.Workers):

- SUBMIT: checking and splitting small inputs, packing, uploads and batch creation (``workers``);
- BIG: checking, splitting and uploading inputs above ``big_input_bytes`` (``big_input_workers``);
- COLLECT: downloads, merges, abandonment, remote cleanup, the seed import (``workers``).

A step's key is unique across the lanes: a key busy in one lane is not queued in another.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Hashable, Mapping

from daemon.config import Settings
from daemon.workers import Workers, wait_idle


class Lane(enum.Enum):
    SUBMIT = "submit"
    BIG = "big"
    COLLECT = "collect"


def lane_sizes(settings: Settings) -> dict[Lane, int]:
    return {Lane.SUBMIT: settings.workers, Lane.BIG: settings.big_input_workers, Lane.COLLECT: settings.workers}


class Lanes:
    """Pools by lane, with the interface of one pool plus the lane to queue a step in."""

    def __init__(self, sizes: Mapping[Lane, int], make_pool: Callable[[int], Workers]) -> None:
        self._pools = {lane: make_pool(size) for lane, size in sizes.items()}

    def start(self) -> None:
        for pool in self._pools.values():
            pool.start()

    def next_ready(self) -> float | None:
        """When the first cooldown of any lane ends (see Workers.next_ready)."""
        ends = [t for t in (pool.next_ready() for pool in self._pools.values()) if t is not None]
        return min(ends, default=None)

    def submit(self, lane: Lane, key: Hashable, task: Callable[[], None]) -> bool:
        """Queue ``task`` in ``lane`` unless a task with the same key is queued or running in any lane."""
        if self.busy(key):
            return False
        return self._pools[lane].submit(key, task)

    def busy(self, key: Hashable) -> bool:
        return any(pool.busy(key) for pool in self._pools.values())

    def idle(self) -> bool:
        return all(pool.idle() for pool in self._pools.values())

    def stop(self, grace: float, force: threading.Event) -> None:
        """Let running tasks of every lane finish for up to ``grace`` seconds in all (or until forced)."""
        wait_idle(self.idle, grace, force)
        for pool in self._pools.values():
            pool.stop(0.0, force)
