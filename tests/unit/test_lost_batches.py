"""A batch the service no longer knows ends its part after a grace; a sighting resets the grace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.errors import NotFoundError
from daemon.service.lost_batches import LostBatches
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartOutcome, PartState
from daemon.state.store import Store

GONE = NotFoundError("HTTP 404: No batch found with id 'batch_x'.")


@pytest.fixture(name="tracked")
def tracked_fixture(tmp_path: Path) -> tuple[Store, Part, Settings]:
    settings = Settings(root=tmp_path, lost_batch_grace=10.0, poll_interval=60.0)
    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / folders.DB_NAME)
    store.add_job(Job("j1", "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, 0.0, 0.0))
    part = Part("j1", 0, 0, "p", 1, 2, 10, 3, PartState.SUBMITTED, 0.0, 0.0, batch_id="batch_x")
    store.add_part(part)
    return store, part, settings


def test_the_grace_counts_from_the_first_404_and_a_sighting_resets_it(tracked: tuple[Store, Part, Settings]) -> None:
    store, part, settings = tracked
    lost = LostBatches(settings, store)
    assert not lost.missing(part, GONE, now=1000.0)
    assert not lost.missing(part, GONE, now=1009.0)
    assert store.part(part.id).next_action_at == 1010.0, "polled again when the grace ends, not later"
    lost.seen("batch_x")
    assert not lost.missing(part, GONE, now=1015.0), "the grace starts again after a sighting"
    assert not lost.missing(part, GONE, now=1024.0)
    assert store.part(part.id).state == PartState.SUBMITTED
    assert lost.missing(part, GONE, now=1026.0)
    ended = store.part(part.id)
    assert (ended.state, ended.outcome) == (PartState.DOWNLOADED, PartOutcome.LOST)
    assert ended.batch_status is None, "the service's status stays what the service said (here: nothing yet)"
    assert ended.shown_status == "lost", "reports and results say it as before"
    assert "batch_x" in str(ended.last_error)


def test_the_first_404_survives_a_restart(tracked: tuple[Store, Part, Settings]) -> None:
    store, part, settings = tracked
    assert not LostBatches(settings, store).missing(part, GONE, now=1000.0)
    restarted = LostBatches(dataclasses.replace(settings), store)
    assert restarted.missing(part, GONE, now=1011.0)
    # ... and a sighting after a restart clears what the state remembered.
    with store.transaction() as conn:  # the batch tracked again: a reset no step makes, so written directly
        conn.execute("UPDATE parts SET state = ? WHERE id = ?", (str(PartState.SUBMITTED), part.id))
    assert not restarted.missing(part, GONE, now=2000.0)
    LostBatches(settings, store).seen("batch_x")
    assert not LostBatches(settings, store).missing(part, GONE, now=2011.0)
