"""The state machine: the store makes every move the tables list and refuses every other, the
cancel note becomes a flag, and docs/states.md shows the tables as they are."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from pathlib import Path

import pytest

from daemon.config import CANCEL_NOTE
from daemon.state import schema
from daemon.state.rows import Job, Part
from daemon.state.states import (
    JOB_MOVES,
    PART_MOVES,
    TERMINAL_JOB_STATES,
    ForbiddenMoveError,
    JobState,
    PartState,
    mermaid,
)
from daemon.state.store import Store

DOC = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def _job(job_id: str, state: JobState) -> Job:
    now = time.time()
    return Job(job_id, "a.jsonl", "/p/a.jsonl", "/s/a.jsonl", state, now, now)


def _part(store: Store, state: PartState) -> Part:
    now = time.time()
    return store.add_part(Part("j1", len(store.parts("j1")), 0, "/s/0.jsonl", 1, 1, 10, 3, state, now, now))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    db = Store(tmp_path / "db.sqlite3")
    db.add_job(_job("j1", JobState.ACTIVE))
    return db


@pytest.mark.parametrize(("now", "to"), list(itertools.product(JobState, JobState)))
def test_a_job_moves_only_as_the_table_allows(store: Store, now: JobState, to: JobState) -> None:
    store.add_job(_job("j2", now))
    if to == now or to in JOB_MOVES[now]:
        store.update_job("j2", state=to, note="moved")
        assert (store.job("j2").state, store.job("j2").note) == (to, "moved")
    else:
        with pytest.raises(ForbiddenMoveError, match=f"job j2 may not move from {now} to {to}"):
            store.update_job("j2", state=to, note="moved")
        assert (store.job("j2").state, store.job("j2").note) == (now, None)  # nothing of the update landed


@pytest.mark.parametrize(("now", "to"), list(itertools.product(PartState, PartState)))
def test_a_part_moves_only_as_the_table_allows(store: Store, now: PartState, to: PartState) -> None:
    part = _part(store, now)
    if to == now or to in PART_MOVES[now]:
        store.update_part(part.id, state=to, last_error="moved")
        assert (store.part(part.id).state, store.part(part.id).last_error) == (to, "moved")
    else:
        with pytest.raises(ForbiddenMoveError, match=f"part {part.id} of job j1 may not move from {now} to {to}"):
            store.update_part(part.id, state=to, last_error="moved")
        assert (store.part(part.id).state, store.part(part.id).last_error) == (now, None)


def test_a_refused_move_inside_a_transaction_undoes_the_whole_transaction(store: Store) -> None:
    first, second = _part(store, PartState.READY), _part(store, PartState.DOWNLOADED)

    def both() -> None:
        with store.transaction():
            store.update_part(first.id, state=PartState.UPLOAD_INTENT)
            store.update_part(second.id, state=PartState.READY)

    with pytest.raises(ForbiddenMoveError):
        both()
    assert [p.state for p in store.parts("j1")] == [PartState.READY, PartState.DOWNLOADED]


def test_every_state_is_in_the_tables_and_only_ended_jobs_lead_nowhere() -> None:
    assert set(JOB_MOVES) == set(JobState)
    assert set(PART_MOVES) == set(PartState)
    assert {state for state, after in JOB_MOVES.items() if not after} == TERMINAL_JOB_STATES
    assert {state for state, after in PART_MOVES.items() if not after} == {PartState.DOWNLOADED, PartState.SUPERSEDED}


def test_every_state_a_step_writes_is_reached_by_some_move() -> None:
    written: set[str] = set()
    for path in (Path(__file__).resolve().parents[2] / "daemon").rglob("*.py"):
        written |= set(re.findall(r"state=((?:Job|Part)State\.[A-Z_]+)", path.read_text(encoding="utf-8")))
    reached = {f"JobState.{to.name}" for after in JOB_MOVES.values() for to in after}
    reached |= {f"PartState.{to.name}" for after in PART_MOVES.values() for to in after}
    assert len(written) > 10, "the scan found the writes"
    assert written <= reached


def test_the_doc_shows_the_tables_as_they_are() -> None:
    # After changing a table, paste the output of daemon.state.states.mermaid() into docs/states.md.
    assert mermaid() in DOC.read_text(encoding="utf-8")


def test_cancel_requested_is_a_flag_and_old_databases_turn_the_note_into_it(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(db)
    old = schema._SCHEMA.replace(",\n    cancel_requested INTEGER NOT NULL DEFAULT 0", "")
    assert old != schema._SCHEMA
    conn.executescript(old + "PRAGMA user_version = 3;")
    for job_id, note in (("cancelled", CANCEL_NOTE), ("other", "a note"), ("plain", None)):
        conn.execute(
            "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, note, created_at, updated_at)"
            " VALUES (?, 'a.jsonl', '', '', 'active', ?, 0, 0)",
            (job_id, note),
        )
    conn.commit()
    conn.close()
    readonly = Store(db, readonly=True)  # `batchd status` before the daemon migrated it: the note says it
    assert {j.id: j.cancel_requested for j in readonly.jobs()} == {"cancelled": True, "other": False, "plain": False}
    readonly.close()
    store = Store(db)
    try:
        assert {j.id: j.cancel_requested for j in store.jobs()} == {"cancelled": True, "other": False, "plain": False}
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        store.update_job("plain", cancel_requested=True)
        assert store.job("plain").cancel_requested is True
    finally:
        store.close()
