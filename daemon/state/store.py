"""The crash-safe state: one SQLite database (WAL, synchronous=FULL) under state/.

Every external call is bracketed by a write here: the intent before it, the result after it.
The database is shared between the daemon's threads (one connection behind a lock) and read
by ``batchd status`` from another process while the daemon writes.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import StateCorruptError
from daemon.redaction import redact_value
from daemon.state.states import INPUT_KIND, TERMINAL_JOB_STATES, JobState, PartState

# 2: remote_files (remote hygiene). Every table is CREATE IF NOT EXISTS, so older databases just gain it.
# 3: jobs.kind, parts.pack_id and parts.pack_slot (small inputs packed into one batch), added by ALTER.
SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    source_name TEXT NOT NULL,
    source_path TEXT NOT NULL,
    inflight_path TEXT NOT NULL,
    result_dir TEXT,
    state TEXT NOT NULL,
    sha256 TEXT,
    size INTEGER,
    endpoint TEXT,
    model TEXT,
    request_count INTEGER,
    final_path TEXT,
    note TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    kind TEXT NOT NULL DEFAULT 'input'
);
CREATE TABLE IF NOT EXISTS parts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    segment INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    path TEXT NOT NULL,
    first_line INTEGER NOT NULL,
    request_count INTEGER NOT NULL,
    byte_size INTEGER NOT NULL,
    est_tokens INTEGER NOT NULL,
    state TEXT NOT NULL,
    intent_at REAL,
    file_id TEXT,
    batch_id TEXT,
    batch_status TEXT,
    batch_json TEXT,
    old_batch_ids TEXT NOT NULL DEFAULT '',
    next_action_at REAL NOT NULL DEFAULT 0,
    poll_wait REAL NOT NULL DEFAULT 0,
    tries INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    submitted_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    pack_id TEXT,
    pack_slot INTEGER,
    UNIQUE (job_id, segment, attempt)
);
CREATE INDEX IF NOT EXISTS parts_by_state ON parts(state, next_action_at);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_by_result_dir ON jobs(result_dir);
CREATE INDEX IF NOT EXISTS parts_by_batch ON parts(batch_id);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remote_files (
    file_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_action_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS remote_files_by_state ON remote_files(state, next_action_at);
"""


@dataclass(slots=True)
class Job:
    id: str
    source_name: str
    source_path: str
    inflight_path: str
    state: JobState
    created_at: float
    updated_at: float
    result_dir: str | None = None
    sha256: str | None = None
    size: int | None = None
    endpoint: str | None = None
    model: str | None = None
    request_count: int | None = None
    final_path: str | None = None
    note: str | None = None
    finished_at: float | None = None
    kind: str = INPUT_KIND


@dataclass(slots=True)
class Part:
    job_id: str
    segment: int
    attempt: int
    path: str
    first_line: int
    request_count: int
    byte_size: int
    est_tokens: int
    state: PartState
    created_at: float
    updated_at: float
    id: int = 0  # 0 until stored
    intent_at: float | None = None
    file_id: str | None = None
    batch_id: str | None = None
    batch_status: str | None = None
    batch_json: str | None = None
    old_batch_ids: str = ""
    next_action_at: float = 0.0
    poll_wait: float = 0.0
    tries: int = 0
    last_error: str | None = None
    submitted_at: float | None = None
    pack_id: str | None = None  # the pack whose batch carries this part's requests
    pack_slot: int | None = None  # its number in that pack: the prefix of its custom_ids there

    @property
    def upload_name(self) -> str:
        """The remote file name: it carries the job and part, so a lost upload can be found again."""
        return f"batchd-{self.job_id}-{self.segment}-{self.attempt}.jsonl"

    @property
    def label(self) -> str:
        return f"{self.segment}.{self.attempt}"


@dataclass(slots=True)
class RemoteFile:
    """A file on the service to delete once its job's results are written (remote hygiene)."""

    file_id: str
    job_id: str
    role: str  # input, output or errors
    # pending, deleted (or found gone), abandoned (gave up; the service's expiry removes it), or kept
    # (its batch's downloads did not verify: left on the service for a person to look at)
    state: str
    updated_at: float
    tries: int = 0
    next_action_at: float = 0.0
    last_error: str | None = None


class Store:
    """Typed access to the state database. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = _connect(path, readonly=readonly)
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

    # jobs -------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        self._insert("jobs", _fields(job))

    def update_job(self, job_id: str, **fields: Any) -> None:
        self._update("jobs", "id", job_id, fields)

    def delete_job(self, job_id: str) -> None:
        """Only for a claim that never happened: the file is still the user's, in the drop zone."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def job(self, job_id: str) -> Job:
        rows = self._select("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(job_id)
        return _job(rows[0])

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        if states is None:
            return [_job(r) for r in self._select("SELECT * FROM jobs ORDER BY created_at, id", ())]
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        query = f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created_at, id"  # noqa: S608
        return [_job(r) for r in self._select(query, wanted)]

    def open_job_ids_noted(self, prefix: str) -> list[str]:
        """Open jobs whose note starts with ``prefix`` (e.g. an operator's request to abandon them)."""
        running = [str(s) for s in JobState if s not in TERMINAL_JOB_STATES]  # IN: the state index serves it
        marks = ",".join("?" * len(running))
        query = f"SELECT id FROM jobs WHERE state IN ({marks}) AND substr(note, 1, ?) = ? ORDER BY created_at, id"  # noqa: S608
        return [str(r["id"]) for r in self._select(query, (*running, len(prefix), prefix))]

    def has_job(self, job_id: str) -> bool:
        return bool(self._select("SELECT 1 FROM jobs WHERE id = ?", (job_id,)))

    def job_ids(self, state: JobState) -> list[str]:
        rows = self._select("SELECT id FROM jobs WHERE state = ? ORDER BY created_at, id", (str(state),))
        return [str(r["id"]) for r in rows]

    def count_jobs(self, states: Iterable[JobState]) -> int:
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        rows = self._select(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN ({marks})", wanted)  # noqa: S608
        return int(rows[0]["n"])

    def result_dir_taken(self, path: str, other_than: str) -> bool:
        rows = self._select("SELECT 1 FROM jobs WHERE result_dir = ? AND id != ?", (path, other_than))
        return bool(rows)

    # parts ------------------------------------------------------------------------------
    def add_part(self, part: Part) -> Part:
        values = _fields(part)
        values.pop("id")
        part.id = self._insert("parts", values)
        return part

    def update_part(self, part_id: int, **fields: Any) -> None:
        self._update("parts", "id", part_id, fields)

    def part(self, part_id: int) -> Part:
        rows = self._select("SELECT * FROM parts WHERE id = ?", (part_id,))
        if not rows:
            raise KeyError(part_id)
        return _part(rows[0])

    def parts(self, job_id: str) -> list[Part]:
        rows = self._select("SELECT * FROM parts WHERE job_id = ? ORDER BY segment, attempt", (job_id,))
        return [_part(r) for r in rows]

    def pack_members(self, pack_id: str) -> list[Part]:
        """The parts a pack carries, by slot."""
        rows = self._select("SELECT * FROM parts WHERE pack_id = ? ORDER BY pack_slot", (pack_id,))
        return [_part(r) for r in rows]

    def parts_by_job(self) -> dict[str, list[Part]]:
        """Every part, grouped by job, each job's in segment and attempt order."""
        grouped: dict[str, list[Part]] = {}
        for row in self._select("SELECT * FROM parts ORDER BY job_id, segment, attempt", ()):
            part = _part(row)
            grouped.setdefault(part.job_id, []).append(part)
        return grouped

    def parts_in(self, states: Iterable[PartState]) -> list[Part]:
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        query = f"SELECT * FROM parts WHERE state IN ({marks}) ORDER BY id"  # noqa: S608
        return [_part(r) for r in self._select(query, wanted)]

    def due_parts(self, state: PartState, now: float, limit: int = 1000) -> list[Part]:
        rows = self._select(
            "SELECT * FROM parts WHERE state = ? AND next_action_at <= ? ORDER BY next_action_at LIMIT ?",
            (str(state), now, limit),
        )
        return [_part(r) for r in rows]

    def finishable_job_ids(self) -> list[str]:
        """Jobs to merge: COLLECTING ones, and ACTIVE ones whose parts are all done (a crash came
        between the last download and the merge, which would otherwise leave them ACTIVE for ever)."""
        rows = self._select(
            "SELECT id FROM jobs j WHERE state = ? OR (state = ?"
            " AND EXISTS (SELECT 1 FROM parts p WHERE p.job_id = j.id)"
            " AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.job_id = j.id AND p.state NOT IN (?, ?)))"
            " ORDER BY created_at, id",
            (str(JobState.COLLECTING), str(JobState.ACTIVE), str(PartState.DOWNLOADED), str(PartState.SUPERSEDED)),
        )
        return [str(r["id"]) for r in rows]

    def due_part_ids(self, states: tuple[PartState, ...], now: float) -> list[int]:
        """Ids only: the main loop dispatches by id on every pass, so whole rows would be waste."""
        marks = ",".join("?" * len(states))
        rows = self._select(
            f"SELECT id FROM parts WHERE state IN ({marks}) AND next_action_at <= ? ORDER BY next_action_at",  # noqa: S608 - marks only
            (*map(str, states), now),
        )
        return [int(r["id"]) for r in rows]

    def next_due(self, state: PartState) -> float | None:
        rows = self._select("SELECT MIN(next_action_at) AS due FROM parts WHERE state = ?", (str(state),))
        due = rows[0]["due"]
        return None if due is None else float(due)

    def enqueued_tokens(self, model: str) -> int:
        """Estimated input tokens of this model's batches the service has not finished."""
        rows = self._select(
            "SELECT COALESCE(SUM(p.est_tokens), 0) AS n FROM parts p JOIN jobs j ON j.id = p.job_id "
            "WHERE p.state = ? AND j.model = ?",
            (str(PartState.SUBMITTED), model),
        )
        return int(rows[0]["n"])

    def part_by_batch(self, batch_id: str) -> Part | None:
        """The part tracking ``batch_id`` now (a webhook names only the batch)."""
        rows = self._select("SELECT * FROM parts WHERE batch_id = ? ORDER BY id DESC LIMIT 1", (batch_id,))
        return _part(rows[0]) if rows else None

    # tallies for the metrics endpoint, read at scrape time ---------------------------------
    def state_counts(self, table: str) -> dict[str, int]:
        """Rows of ``jobs`` or ``parts`` by state."""
        if table not in ("jobs", "parts"):
            raise ValueError(table)
        rows = self._select(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state", ())  # noqa: S608
        return {str(r["state"]): int(r["n"]) for r in rows}

    def batch_status_counts(self) -> dict[str, int]:
        rows = self._select(
            "SELECT batch_status, COUNT(*) AS n FROM parts "
            "WHERE batch_id IS NOT NULL AND batch_status IS NOT NULL GROUP BY batch_status",
            (),
        )
        return {str(r["batch_status"]): int(r["n"]) for r in rows}

    def request_totals(self) -> tuple[int, int]:
        """Requests the service counted as completed and as failed, over every batch seen."""
        rows = self._select(
            "SELECT COALESCE(SUM(json_extract(batch_json, '$.request_counts.completed')), 0) AS ok, "
            "COALESCE(SUM(json_extract(batch_json, '$.request_counts.failed')), 0) AS bad "
            "FROM parts WHERE batch_json IS NOT NULL",
            (),
        )
        return int(rows[0]["ok"]), int(rows[0]["bad"])

    def oldest_submitted_at(self) -> float | None:
        rows = self._select("SELECT MIN(submitted_at) AS t FROM parts WHERE state = ?", (str(PartState.SUBMITTED),))
        return None if rows[0]["t"] is None else float(rows[0]["t"])

    def enqueued_tokens_by_model(self) -> dict[str, int]:
        """``enqueued_tokens`` for every model at once."""
        rows = self._select(
            "SELECT j.model AS model, SUM(p.est_tokens) AS n FROM parts p JOIN jobs j ON j.id = p.job_id "
            "WHERE p.state = ? GROUP BY j.model",
            (str(PartState.SUBMITTED),),
        )
        return {str(r["model"]): int(r["n"]) for r in rows}

    # remote files to delete (hygiene) ----------------------------------------------------
    def add_remote_files(self, job_id: str, files: Iterable[tuple[str, str]], now: float) -> None:
        """Record (file id, role) pairs as pending; ids already recorded are left as they are."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO remote_files (file_id, job_id, role, state, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?)",
                [(file_id, job_id, role, now) for file_id, role in files],
            )

    def keep_remote_files(self, job_id: str, files: Iterable[tuple[str, str]], now: float) -> None:
        """Record (file id, role) pairs as kept: a person may need them, so hygiene never deletes them."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO remote_files (file_id, job_id, role, state, updated_at) VALUES (?, ?, ?, 'kept', ?) "
                "ON CONFLICT(file_id) DO UPDATE SET state = 'kept', updated_at = excluded.updated_at",
                [(file_id, job_id, role, now) for file_id, role in files],
            )

    def due_remote_files(self, now: float, limit: int = 100) -> list[RemoteFile]:
        """Pending deletions whose job has ended (its results are written), oldest due first."""
        ended = sorted(str(s) for s in TERMINAL_JOB_STATES)
        marks = ",".join("?" * len(ended))
        query = (
            "SELECT r.* FROM remote_files r JOIN jobs j ON j.id = r.job_id WHERE r.state = 'pending' "  # noqa: S608
            f"AND r.next_action_at <= ? AND j.state IN ({marks}) ORDER BY r.next_action_at LIMIT ?"
        )
        rows = self._select(query, (now, *ended, limit))
        return [RemoteFile(**dict(r)) for r in rows]

    def remote_files(self, job_id: str) -> list[RemoteFile]:
        rows = self._select("SELECT * FROM remote_files WHERE job_id = ? ORDER BY file_id", (job_id,))
        return [RemoteFile(**dict(r)) for r in rows]

    def update_remote_file(self, file_id: str, **fields: Any) -> None:
        self._update("remote_files", "file_id", file_id, fields)

    # facts (heartbeat, imports, learned limits) -------------------------------------------
    def set_fact(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO facts(key, value) VALUES (?, ?)", (key, value))

    def delete_fact(self, key: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM facts WHERE key = ?", (key,))

    def fact(self, key: str) -> str | None:
        rows = self._select("SELECT value FROM facts WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    # plumbing ---------------------------------------------------------------------------
    def _insert(self, table: str, values: dict[str, Any]) -> int:
        cols = ",".join(values)
        marks = ",".join("?" * len(values))
        with self.transaction() as conn:
            # Table and column names come from our own dataclasses, never from input.
            query = f"INSERT INTO {table} ({cols}) VALUES ({marks})"  # noqa: S608
            cur = conn.execute(query, [_db(v) for v in values.values()])
            return int(cur.lastrowid or 0)

    def _update(self, table: str, key: str, ident: object, fields: dict[str, Any]) -> None:
        fields.setdefault("updated_at", time.time())
        for name in _FREE_TEXT.intersection(fields):  # error texts may quote what a service echoed
            fields[name] = redact_value(fields[name])
        sets = ",".join(f"{name} = ?" for name in fields)
        with self.transaction() as conn:
            conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*map(_db, fields.values()), ident])  # noqa: S608

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


def _fields(row: Job | Part) -> dict[str, Any]:
    """A row's columns; dataclasses.asdict deep-copies every value, which costs a burst of claims dearly."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


_FREE_TEXT = frozenset({"last_error", "note"})


def _db(value: object) -> object:
    return str(value) if isinstance(value, JobState | PartState) else value


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    return Job(**values)


def _part(row: sqlite3.Row) -> Part:
    values = dict(row)
    values["state"] = PartState(values["state"])
    return Part(**values)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Open the database and prove it is sound; never start on a damaged one."""
    if not readonly:
        # Created owner-only before SQLite opens it: its -wal and -shm files copy this mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    try:
        uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(check)
        _migrate(conn, readonly=readonly)
    except sqlite3.DatabaseError as exc:
        raise StateCorruptError(
            f"state database {path} is damaged ({exc}); batchd will not start on it. "
            "Run `batchd recover`: it keeps the damaged file beside as batchd.sqlite3.damaged-TIME and rebuilds "
            "the jobs from state/ and the service."
        ) from None
    return conn


def _migrate(conn: sqlite3.Connection, *, readonly: bool) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"schema version {version} is newer than this batchd ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION and not readonly:
        with conn:
            conn.executescript(_SCHEMA)
            _add_columns(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# Columns added after a table first shipped: CREATE TABLE IF NOT EXISTS leaves an old table as it is.
_ADDED_COLUMNS = {
    "jobs": {"kind": "TEXT NOT NULL DEFAULT 'input'"},
    "parts": {"pack_id": "TEXT", "pack_slot": "INTEGER"},
}


def _add_columns(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
