"""The connection to the state database: one SQLite connection behind a lock, and transactions.

The database is shared between the daemon's threads and read by ``batchd status`` from another
process while the daemon writes. The query groups (store.py, metrics_queries.py, remote_file_queries.py)
build on this.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.errors import StateCorruptError
from daemon.redaction import redact_value
from daemon.state.rows import db_value
from daemon.state.schema import connect


class Database:
    """The connection, its lock and the plumbing every query group uses. Thread-safe."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = connect(path, readonly=readonly)
        self._depth = 0
        # The file just opened: the heartbeat checks the path still names it (ops/lost_state_guard.py).
        self.identity = file_identity(path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit once, at the outermost level, so nested writes land together or not at all."""
        with self._lock:
            self._depth += 1
            try:
                yield self._conn
                if self._depth == 1:
                    self._conn.commit()
            except BaseException:
                if self._depth == 1:
                    self._conn.rollback()
                raise
            finally:
                self._depth -= 1

    @contextmanager
    def unsynced(self) -> Iterator[None]:
        """Writes whose loss to a power cut costs nothing (the heartbeat, a liveness stamp): committed
        without waiting for the disk, so an idle daemon does not wake the disk every few seconds. The
        next synced commit takes them to the disk anyway."""
        with self._lock:
            self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield
            finally:
                self._conn.execute("PRAGMA synchronous=FULL")  # as schema.connect set it

    def data_version(self) -> int:
        """SQLite's count of commits by OTHER connections (another process: `batchd cancel`, `abandon`,
        `retry`); the daemon's own threads share this one connection, so their writes leave it as it is."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _insert(self, table: str, values: dict[str, Any]) -> int:
        cols = ",".join(values)
        marks = ",".join("?" * len(values))
        with self.transaction() as conn:
            # Table and column names come from our own dataclasses, never from input.
            query = f"INSERT INTO {table} ({cols}) VALUES ({marks})"  # noqa: S608
            cur = conn.execute(query, [db_value(v) for v in values.values()])
            return int(cur.lastrowid or 0)

    def _update(self, table: str, key: str, ident: object, fields: dict[str, object]) -> None:
        fields.setdefault("updated_at", time.time())
        for name in _FREE_TEXT.intersection(fields):  # error texts may quote what a service echoed
            fields[name] = redact_value(fields[name])
        sets = ",".join(f"{name} = ?" for name in fields)
        with self.transaction() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*map(db_value, fields.values()), ident])  # noqa: S608

    def _select(self, query: str, args: Iterable[object]) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._conn.execute(query, tuple(args)))
            except sqlite3.DatabaseError as exc:
                raise StateCorruptError(f"state database {self.path} cannot be read: {exc}") from exc


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


_FREE_TEXT = frozenset({"last_error", "note"})
