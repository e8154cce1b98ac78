"""Remote hygiene: once results are written, the job's files leave the service, whatever fails."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.config import load_settings
from daemon.limits import EXPIRY_MAX_SECONDS
from daemon.state.folders import DB_NAME
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store


def test_nothing_is_due_before_the_job_ends(tmp_path: Path) -> None:
    store = Store(tmp_path / DB_NAME)
    store.add_job(Job("j1", "a.jsonl", "a", "a", JobState.COLLECTING, 0.0, 0.0))
    store.add_remote_files("j1", [("file-1", "output")], 0.0)
    assert store.due_remote_files(1e12) == []
    store.update_job("j1", state=JobState.DONE)
    assert [f.file_id for f in store.due_remote_files(1e12)] == ["file-1"]
    store.close()


def test_an_old_database_gains_the_table(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE facts (key TEXT PRIMARY KEY, value TEXT NOT NULL); PRAGMA user_version = 1;")
    conn.execute("INSERT INTO facts VALUES ('kept', 'yes')")
    conn.commit()
    conn.close()
    store = Store(db)
    assert store.fact("kept") == "yes"
    assert store.remote_files("nobody") == []
    store.close()


def test_settings_defaults_and_switch(tmp_path: Path) -> None:
    s = load_settings(environ={}, overrides={"root": tmp_path})
    assert s.delete_remote_files is True
    assert s.output_expires_after == EXPIRY_MAX_SECONDS
    off = load_settings(environ={"BATCHD_DELETE_REMOTE_FILES": "false", "BATCHD_OUTPUT_EXPIRES_AFTER": ""})
    assert off.delete_remote_files is False
    assert off.output_expires_after is None
