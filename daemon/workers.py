"""A small pool of daemon threads for uploads, downloads and merges.

Not ``concurrent.futures``: its threads are joined at interpreter exit, so one long upload would
hold a SIGTERM'd daemon past its stop timeout. Abandoning a step is safe: every step starts from a
persisted intent and is reconciled on the next start.

A step that fails (a full disk, an unwritable folder, a bug) is not offered again at once: its key
cools down, doubling from one second up to a minute, so a problem the operator fixes is picked up
soon, while one that persists costs one log line a minute, not four a second.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable

from daemon.clock import WALL_CLOCK, Clock
from daemon.logs import get_logger

log = get_logger(__name__)
# A full disk or unwritable folder: OSError from files, sqlite3.OperationalError from the state DB.
STORAGE_ERRORS = (OSError, sqlite3.OperationalError)
FIRST_COOLDOWN = 1.0
MAX_COOLDOWN = 60.0
STOP_POLL = 0.05  # how often a stop looks whether the running steps have finished


class Workers:
    def __init__(self, size: int, on_done: Callable[[], None], clock: Clock = WALL_CLOCK) -> None:
        self._clock = clock  # cooldowns end by it
        self._tasks: queue.Queue[tuple[Hashable, Callable[[], None]] | None] = queue.Queue()
        self._busy: set[Hashable] = set()
        self._cooling: dict[Hashable, tuple[float, float]] = {}  # key -> (last cooldown, until)
        self._lock = threading.Lock()
        self._on_done = on_done
        self._threads = [
            threading.Thread(target=self._work, name=f"batchd-worker-{n}", daemon=True) for n in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, task: Callable[[], None]) -> bool:
        """Queue ``task`` unless a task with the same key is queued or running."""
        with self._lock:
            if key in self._busy or self._clock.now() < self._cooling.get(key, (0.0, 0.0))[1]:
                return False
            self._busy.add(key)
        self._tasks.put((key, task))
        return True

    def busy(self, key: Hashable) -> bool:
        """Whether a task with this key is queued or running."""
        with self._lock:
            return key in self._busy

    def next_ready(self) -> float | None:
        """When the next cooldown ends (a step then may be offered again), by the clock; None if none."""
        now = self._clock.now()
        with self._lock:
            ends = [until for _, until in self._cooling.values() if until > now]
        return min(ends, default=None)

    def idle(self) -> bool:
        with self._lock:
            return not self._busy

    def stop(self, grace: float, force: threading.Event) -> None:
        """Let running tasks finish for up to ``grace`` seconds (or until forced), then leave them."""
        wait_idle(self.idle, grace, force)
        for _ in self._threads:
            self._tasks.put(None)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            key, task = item
            try:
                task()
            except STORAGE_ERRORS as exc:  # the operator can fix these, so say what and where
                log.error("storage_failed", step=str(key), error=storage_reason(exc), retry_in=self._cool(key))
            except Exception:
                log.exception("step_crashed", step=str(key), retry_in=self._cool(key))
            else:
                with self._lock:
                    self._cooling.pop(key, None)
            finally:
                with self._lock:
                    self._busy.discard(key)
                self._on_done()

    def _cool(self, key: Hashable) -> float:
        """Hold ``key`` back for a while; return for how long."""
        with self._lock:
            last = self._cooling.get(key, (0.0, 0.0))[0]
            wait = min(MAX_COOLDOWN, last * 2 if last else FIRST_COOLDOWN)
            self._cooling[key] = (wait, self._clock.now() + wait)
        return wait


def wait_idle(idle: Callable[[], bool], grace: float, force: threading.Event) -> None:
    """Wait until ``idle()`` holds, for ``grace`` seconds at most, or until ``force`` is set."""
    deadline = time.monotonic() + grace  # a pure wait at shutdown, not a timing rule: the monotonic clock
    while not idle() and time.monotonic() < deadline and not force.wait(STOP_POLL):
        pass


def storage_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)
