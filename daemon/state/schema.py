"""The state database's schema, and the migrations that bring an older database up to it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from daemon.config import CANCEL_NOTE
from daemon.errors import StateCorruptError
from daemon.state.rows import ABANDON_NOTE, CANCELLED_FIRST, noted_abandon_time
from daemon.state.states import INPUT_KIND, OUTCOME_WORDS, PACK_KIND, TERMINAL_JOB_STATES, PartOrigin, PartOutcome

# 2: remote_files (remote hygiene). Every table is CREATE IF NOT EXISTS, so older databases just gain it.
# 3: jobs.kind, parts.pack_id and parts.pack_slot (small inputs packed into one batch), added by ALTER.
# 4: jobs.cancel_requested (was the note "cancel requested"; old jobs with that note get the flag).
# 5: parts.origin and parts.outcome (were told from paths and made-up batch statuses), jobs.abandon_requested_at
#    and jobs.abandon_after_cancel (were the note "abandoned by the operator at ..."); see _backfill_5.
# 6: jobs.profile, the provider profile whose service runs the job (the pending_upload/ subfolder it
#    came from); older jobs all ran on the one service there was: 'default'.
# 7: commands, the operators' requests (cancel, abandon, retry) the running daemon carries out, with who
#    asked, when, and the outcome (ops/command_desk.py); a new table, so older databases just gain it.
#    And job_notices, the on_job_done notifications owed: a row per input job that ended, added by a
#    trigger in the transaction that ends it (no ending is missed, whichever code path ends it).
# 8: parts.model, the model a part's lines name when its input names several (split_by_model); NULL
#    for every older part and for an input of one model: the job's model (rows.part_model).
SCHEMA_VERSION = 8
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
    kind TEXT NOT NULL DEFAULT 'input',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    abandon_requested_at REAL,
    abandon_after_cancel INTEGER NOT NULL DEFAULT 0,
    profile TEXT NOT NULL DEFAULT 'default'
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
    origin TEXT NOT NULL DEFAULT 'own_file',
    outcome TEXT,
    model TEXT,
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
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    requested_by TEXT NOT NULL,
    requested_at REAL NOT NULL,
    state TEXT NOT NULL,
    result TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS commands_by_state ON commands(state, requested_at);
"""

_ENDED = ", ".join(f"'{state}'" for state in sorted(TERMINAL_JOB_STATES))
# The on_job_done notifications owed (state/notice_queries.py): written in the transaction that ends the job.
# (Constants only in the f-string.)
_SCHEMA += f"""CREATE TABLE IF NOT EXISTS job_notices (job_id TEXT PRIMARY KEY, ended_at REAL NOT NULL);
CREATE TRIGGER IF NOT EXISTS job_ended AFTER UPDATE OF state ON jobs
WHEN NEW.kind = '{INPUT_KIND}' AND NEW.state IN ({_ENDED}) AND OLD.state NOT IN ({_ENDED})
BEGIN
    INSERT OR IGNORE INTO job_notices (job_id, ended_at) VALUES (NEW.id, COALESCE(NEW.finished_at, NEW.updated_at));
END;
"""  # noqa: S608


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
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
            if version < 4:  # the version that turned the cancel note into a column
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE note = ?", (CANCEL_NOTE,))
            if version < 5:
                _backfill_5(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# Columns added after a table first shipped: CREATE TABLE IF NOT EXISTS leaves an old table as it is.
_ADDED_COLUMNS = {
    "jobs": {
        "kind": "TEXT NOT NULL DEFAULT 'input'",
        "cancel_requested": "INTEGER NOT NULL DEFAULT 0",
        "abandon_requested_at": "REAL",
        "abandon_after_cancel": "INTEGER NOT NULL DEFAULT 0",
        "profile": "TEXT NOT NULL DEFAULT 'default'",
    },
    "parts": {
        "pack_id": "TEXT",
        "pack_slot": "INTEGER",
        "origin": "TEXT NOT NULL DEFAULT 'own_file'",
        "outcome": "TEXT",
        "model": "TEXT",
    },
}


def _add_columns(conn: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


# Version 5 records what older rows only showed: each part's origin, as its path and job show it;
# the ending batchd gave a part, from the batch status it made up (the status the service last
# said is read back from the stored batch, if there is one); the operator's abandon, from the note.
_ORIGINS = (
    # A pack's shared part: its job is a pack.
    (PartOrigin.PACK, "job_id IN (SELECT id FROM jobs WHERE kind = ?)", (PACK_KIND,)),
    # The seed import's: no file at all, or its copy of the original input (the only attempt 0 named so).
    (PartOrigin.IMPORTED_WITHOUT_INPUT, "path = ''", ()),
    (PartOrigin.IMPORTED, "attempt = 0 AND (path LIKE '%/0.0.jsonl' OR path = '0.0.jsonl')", ()),
    # A held input: the part points at the input itself.
    (PartOrigin.HELD_INPUT, "path = (SELECT inflight_path FROM jobs WHERE jobs.id = parts.job_id)", ()),
)


def _backfill_5(conn: sqlite3.Connection) -> None:
    for origin, where, args in _ORIGINS:
        query = f"UPDATE parts SET origin = ? WHERE origin = ? AND {where}"  # noqa: S608 - constants only
        conn.execute(query, (str(origin), str(PartOrigin.OWN_FILE), *args))
    for outcome, word in OUTCOME_WORDS.items():
        # A batch the service cancelled keeps its status; only a part without a batch was cancelled by batchd.
        conn.execute(
            "UPDATE parts SET outcome = ?, batch_status = CASE WHEN json_valid(batch_json)"
            " THEN json_extract(batch_json, '$.status') END WHERE batch_status = ? AND (? OR batch_id IS NULL)",
            (str(outcome), word, outcome != PartOutcome.CANCELLED),
        )
    query = "SELECT id, note, updated_at FROM jobs WHERE substr(note, 1, ?) = ?"
    rows = conn.execute(query, (len(ABANDON_NOTE), ABANDON_NOTE))
    for job_id, note, updated_at in rows.fetchall():
        conn.execute(
            "UPDATE jobs SET abandon_requested_at = ?, abandon_after_cancel = ? WHERE id = ?",
            (noted_abandon_time(note, updated_at), CANCELLED_FIRST in note, job_id),
        )
