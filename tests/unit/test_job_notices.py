"""The notifications owed: a row for every input job that ends, written with the ending itself, also
in a database made by an older batchd (schema 6, before the commands and the notices)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.state import schema
from daemon.state.command_queries import Command
from daemon.state.rows import Job
from daemon.state.states import PACK_KIND, JobState
from daemon.state.store import Store


def _version_6(db: Path) -> None:
    old = schema._SCHEMA[: schema._SCHEMA.index("CREATE TABLE IF NOT EXISTS commands")]
    conn = sqlite3.connect(db)
    conn.executescript(old + "PRAGMA user_version = 6;")
    conn.execute(
        "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, created_at, updated_at)"
        " VALUES ('old', 'old.jsonl', '', '', 'collecting', 0, 0)"
    )
    conn.commit()
    conn.close()


def test_an_older_database_gains_the_commands_and_owes_a_notice_for_each_ending(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    _version_6(db)
    store = Store(db)
    try:
        assert store.owed_notices(10) == [], "endings before the upgrade are not owed"
        store.update_job("old", state=JobState.DONE, finished_at=5.0)
        store.add_job(Job("p", "pack", "", "", JobState.CLAIMED, 1.0, 1.0, kind=PACK_KIND))
        store.update_job("p", state=JobState.FAILED, finished_at=6.0)  # a pack is not the user's job
        store.add_job(Job("bad", "bad.jsonl", "", "", JobState.CLAIMED, 2.0, 2.0))
        store.update_job("bad", state=JobState.REJECTED, finished_at=4.0)
        store.update_job("bad", note="a later change of another column owes nothing more")
        assert store.owed_notices(10) == ["bad", "old"], "in the order they ended"
        store.drop_notice("bad")
        assert store.owed_notices(10) == ["old"]
        assert store.drop_all_notices() == 1 and store.owed_notices(10) == []
        assert store.add_command(Command("c1", "cancel", "old.jsonl", "alice", 3.0))
        assert not store.add_command(Command("c1", "cancel", "old.jsonl", "alice", 3.0)), "entered once"
        store.end_command("c1", "refused", "no open job for 'old.jsonl'", 4.0)
        [command] = store.recent_commands()
        assert (command.state, command.result, command.done_at) == ("refused", "no open job for 'old.jsonl'", 4.0)
        assert store.requested_commands() == []
    finally:
        store.close()


def test_a_read_only_look_at_an_older_database_has_no_commands(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    _version_6(db)
    store = Store(db, readonly=True)
    try:
        assert store.recent_commands() == []
    finally:
        store.close()
