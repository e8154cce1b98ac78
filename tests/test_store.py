"""The state database: atomic multi-row writes, a refusal to start on a damaged file, the lock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon.errors import AlreadyRunningError, StateCorruptError
from daemon.folders import InstanceLock
from daemon.states import JobState
from daemon.store import Job, Store


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
    with pytest.raises(StateCorruptError, match="Move it aside"):
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
