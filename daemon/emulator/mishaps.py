"""Batches that go wrong on the service's side: ones it forgets, and ones it never ends.

  * vanish: the batch answers 404 on retrieve and cancel and is left out of listings, as when a
    server restarts and loses its batches (llama-stack) or a demo emulator is restarted;
  * never_end: the batch stays in_progress for ever, never expiring, until it is cancelled (Azure
    runs batches until cancelled). Marked before it leaves validating, it stalls with half its
    requests done, so a cancel leaves work undone.

Either applies to given batch ids, or to the next N batches created. Set from Python
(`server.store.mishaps`) or over HTTP (`POST /_emulator/batches`, see control.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

SETTINGS = ("vanish", "restore", "never_end", "vanish_next", "never_end_next")


class Mishaps:
    """Which batches are gone or endless. The store asks; tests and the control API tell."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vanished: set[str] = set()
        self._endless: set[str] = set()
        self._vanish_next = 0
        self._never_end_next = 0

    def vanish(self, batch_id: str) -> None:
        with self._lock:
            self._vanished.add(batch_id)

    def restore(self, batch_id: str) -> None:
        """The service knows the batch again (it was only briefly lost)."""
        with self._lock:
            self._vanished.discard(batch_id)

    def never_end(self, batch_id: str) -> None:
        with self._lock:
            self._endless.add(batch_id)

    def vanish_next(self, count: int) -> None:
        with self._lock:
            self._vanish_next = _count(count, "vanish_next")

    def never_end_next(self, count: int) -> None:
        with self._lock:
            self._never_end_next = _count(count, "never_end_next")

    def created(self, batch_id: str) -> None:
        """A batch was just created: it takes one of the pending 'next N' mishaps."""
        with self._lock:
            if self._vanish_next:
                self._vanish_next -= 1
                self._vanished.add(batch_id)
            if self._never_end_next:
                self._never_end_next -= 1
                self._endless.add(batch_id)

    def vanished(self, batch_id: str) -> bool:
        with self._lock:
            return batch_id in self._vanished

    def endless(self, batch_id: str) -> bool:
        with self._lock:
            return batch_id in self._endless

    def apply(self, config: Mapping[str, Any]) -> None:
        """Apply a control payload, checked whole before anything changes."""
        unknown = sorted(set(config) - set(SETTINGS))
        if unknown:
            raise ValueError(f"unknown batch mishap {unknown[0]!r}; expected {', '.join(SETTINGS)}")
        ids = {key: _ids(config.get(key, []), key) for key in ("vanish", "restore", "never_end")}
        counts = {key: _count(config[key], key) for key in ("vanish_next", "never_end_next") if key in config}
        for batch_id in ids["vanish"]:
            self.vanish(batch_id)
        for batch_id in ids["restore"]:
            self.restore(batch_id)
        for batch_id in ids["never_end"]:
            self.never_end(batch_id)
        if "vanish_next" in counts:
            self.vanish_next(counts["vanish_next"])
        if "never_end_next" in counts:
            self.never_end_next(counts["never_end_next"])

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "vanished": sorted(self._vanished),
                "endless": sorted(self._endless),
                "vanish_next": self._vanish_next,
                "never_end_next": self._never_end_next,
            }


def _ids(value: object, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key!r} must be a list of batch ids")
    return list(value)


def _count(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10_000:
        raise ValueError(f"{key!r} must be a whole number from 0 to 10000")
    return value
