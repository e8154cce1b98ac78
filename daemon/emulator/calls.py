"""A log of every HTTP request the emulator answered, for tests and benchmarks to count calls."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

# Status recorded when the connection was closed without (a complete) response.
DROPPED = 0


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    # The path as requested (without the query string).
    path: str
    # The path with ids replaced, e.g. "/v1/batches/{batch_id}"; unknown paths are kept as they are.
    route: str
    status: int


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._credentials: list[tuple[str, str, str]] = []

    def record(self, method: str, path: str, route: str, status: int) -> None:
        with self._lock:
            self._calls.append(Call(method, path, route, status))
            self._counts[(method, route)] += 1

    def record_credential(self, method: str, route: str, credential: str) -> None:
        """How a call authenticated, as sent: `Bearer TOKEN`, `api-key KEY` or "" (tests check which
        key or token a client sent; the emulator holds no real secret)."""
        with self._lock:
            self._credentials.append((method, route, credential))

    def credentials(self) -> list[tuple[str, str, str]]:
        """(method, route, credential) of each call, in order of arrival."""
        with self._lock:
            return list(self._credentials)

    def count(self, method: str, route: str) -> int:
        """How many `method route` requests arrived, e.g. count("POST", "/v1/batches")."""
        with self._lock:
            return self._counts[(method, route)]

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def entries(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._counts.clear()
            self._credentials.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            counts = [{"method": m, "route": r, "count": n} for (m, r), n in sorted(self._counts.items())]
            return {"total": len(self._calls), "counts": counts}
