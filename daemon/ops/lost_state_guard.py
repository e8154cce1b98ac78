"""Guards against working on lost state: the database is the only record of what was paid for.

A start with no database (or an empty one) while state/ still holds inputs, part files or packs
would begin from nothing and leave those inputs, and the batches they paid for, behind for ever.
A database removed or replaced under a running daemon would swallow all later work at the next
restart. Both stop batchd with a message naming ``batchd recover``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from daemon.config import Settings
from daemon.errors import StateLostError
from daemon.intake.packer import UNMATCHED_NOTE
from daemon.state.database import file_identity
from daemon.state.folders import DB_NAME, INFLIGHT, PACKS, PARTS
from daemon.state.store import Store

RECOVERED_FACT = "recovered_at"  # set by `batchd recover`: what it could not match may stay in state/
RECOVER_HINT = (
    "run `batchd recover` (with the daemon stopped): it rebuilds the jobs from the files in state/ and the "
    "batches on the service, adopts every batch already paid for, and moves inputs never submitted back "
    "to pending_upload/"
)


def refuse_lost_state(settings: Settings) -> None:
    """Raise StateLostError if the database is missing or empty while state/ holds work."""
    held = held_files(settings.state)
    if not held:
        return  # a fresh root: start as usual
    db = settings.state / DB_NAME
    problem = _database_problem(db)
    if problem is not None:
        raise StateLostError(
            f"the state database {db} {problem}, but {len(held)} item(s) in state/ (e.g. {held[0]}) belong to "
            f"jobs it should record; batchd will not start from nothing and lose them. To fix: {RECOVER_HINT}."
        )


def held_files(state: Path) -> list[Path]:
    """Entries of state/inflight/, state/parts/ and state/packs/ (a pack folder kept only for a
    person to read, with its UNMATCHED note, does not count)."""
    found: list[Path] = []
    for sub in (INFLIGHT, PARTS, PACKS):
        try:
            entries = sorted(os.scandir(state / sub), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        found += [Path(e.path) for e in entries if not (sub == PACKS and (Path(e.path) / UNMATCHED_NOTE).exists())]
    return found


def _database_problem(db: Path) -> str | None:
    try:
        if db.stat().st_size == 0:
            return "is empty"
    except FileNotFoundError:
        return "is missing"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return None  # Store reports a damaged database itself
    try:
        jobs = conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone()
        recovered = conn.execute("SELECT 1 FROM facts WHERE key = ?", (RECOVERED_FACT,)).fetchone()
    except sqlite3.OperationalError:
        return "holds no jobs"  # no tables: not a database batchd has ever used
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return None if jobs or recovered else "holds no jobs"


def lost_database(store: Store) -> str | None:
    """What happened to the open database's file, if its path no longer names it."""
    now = file_identity(store.path)
    if now is None:
        return f"the state database {store.path} was removed while batchd was running"
    if now != store.identity:
        return f"the state database {store.path} was replaced by another file while batchd was running"
    if _size(store.path) == 0:  # an open database never is: its header is written when it is created
        return f"the state database {store.path} was emptied while batchd was running"
    return None


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None
