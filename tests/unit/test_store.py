"""The state database: atomic multi-row writes, a refusal to start on a damaged file, the lock."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from daemon.errors import AlreadyRunningError, StateCorruptError
from daemon.redaction import remember_secret
from daemon.state import schema
from daemon.state.folders import InstanceLock
from daemon.state.rows import Job, Part, part_model
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import version_7_database


def _job(job_id: str) -> Job:
    now = time.time()
    return Job(job_id, "a.jsonl", "/p/a.jsonl", "/s/a.jsonl", JobState.CLAIMED, now, now)


def test_nested_writes_land_together_or_not_at_all(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")

    def interrupted() -> None:
        with store.transaction():
            store.add_job(_job("one"))
            store.update_job("one", state=JobState.ACTIVE)
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        interrupted()
    assert store.jobs() == []
    store.close()


def test_damaged_database_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    store = Store(db)
    store.add_job(_job("one"))
    store.close()
    with open(db, "r+b") as fh:  # scribble over the header and the first pages
        fh.write(b"\x00garbage" * 512)
    with pytest.raises(StateCorruptError, match="will not start on it"):
        Store(db)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    db.write_text("this is a text file, not SQLite\n" * 100)
    with pytest.raises(StateCorruptError, match="batchd recover"):
        Store(db)


def test_second_lock_holder_is_refused(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(AlreadyRunningError, match="already running"):
            InstanceLock(tmp_path).acquire()
    finally:
        first.release()
    again = InstanceLock(tmp_path)
    again.acquire()  # released locks can be taken again
    again.release()


def test_a_version_2_database_gains_the_packing_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    # The version 2 schema: today's, without the columns version 3 added.
    old = schema._SCHEMA.replace(",\n    kind TEXT NOT NULL DEFAULT 'input'", "")
    old = old.replace("    pack_id TEXT,\n    pack_slot INTEGER,\n", "")
    assert old != schema._SCHEMA
    conn.executescript(old + "PRAGMA user_version = 2;")
    conn.execute(
        "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, created_at, updated_at)"
        " VALUES ('j1', 'a.jsonl', '', '', 'active', 0, 0)"
    )
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        assert store.job("j1").kind == "input"
        assert store.pack_members("nothing") == []
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    finally:
        store.close()


def test_a_version_7_database_gains_the_part_model_and_its_parts_keep_their_jobs_model(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    version_7_database(db, est_tokens=1, part_state="ready")
    store = Store(db)
    try:
        job, (old_part,) = store.job("j1"), store.parts("j1")
        assert old_part.model is None and part_model(old_part, job) == "gpt-4o-mini"
        now = time.time()
        new = store.add_part(Part("j1", 1, 0, "q", 2, 1, 1, 1, PartState.READY, now, now, model="gpt-4o"))
        assert part_model(store.parts("j1")[1], job) == "gpt-4o" and new.id
    finally:
        store.close()


def test_error_texts_are_stored_with_secrets_masked(tmp_path: Path) -> None:
    remember_secret("stored-secret-0123456789")
    store = Store(tmp_path / "db.sqlite3")
    store.add_job(_job("one"))
    store.update_job("one", note="the proxy said: bad token stored-secret-0123456789")
    assert store.job("one").note == "the proxy said: bad token [redacted]"
    store.close()
