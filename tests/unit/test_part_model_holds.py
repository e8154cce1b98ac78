"""An input split by model (split_by_model) waits in each model's queue separately: the enqueued
tokens are counted under a part's own model, a full queue of one model holds that model's part
alone, and the other model's part is sent and finishes. Driven on a clock the test moves by hand,
against the emulator's enqueued-token limit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.status import job_rows
from daemon.cli.status_waits import WaitFacts, job_wait
from daemon.service.holds import TOKEN_LIMIT_RETRY, Holds
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.state.token_limits import known_limit
from tests.support import FakeClock, PartRig, part_rig, request_file, version_7_database

ENDPOINT = "/v1/chat/completions"
MINI, FULL = "gpt-4o-mini", "gpt-4o"
LIMIT = 100  # the emulator's enqueued-token limit per model; a request line is about 20 of its tokens
RUNNING = 1000.0  # fake seconds a batch stays in_progress: far longer than a model hold


def _job(store: Store, job_id: str, now: float, model: str | None = None, profile: str = "default") -> Job:
    job = Job(job_id, "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, now, now, model=model, profile=profile)
    job.endpoint = ENDPOINT
    store.add_job(job)
    return job


def _part(store: Store, job_id: str, state: PartState, est: int, now: float, model: str | None, seg: int = 0) -> Part:
    return store.add_part(Part(job_id, seg, 0, "p", 1, 1, 10, est, state, now, now, model=model))


def test_enqueued_tokens_count_a_part_under_its_own_model(store: Store) -> None:
    now = 1.0
    _job(store, "mixed", now)  # an input split by model: the job names no model
    _job(store, "plain", now, model=MINI, profile="azure")
    _part(store, "mixed", PartState.SUBMITTED, 30, now, MINI)
    _part(store, "mixed", PartState.SUBMITTED, 70, now, FULL, seg=1)
    _part(store, "mixed", PartState.UPLOADED, 500, now, FULL, seg=2)  # not enqueued yet
    _part(store, "plain", PartState.SUBMITTED, 5, now, None)  # its job's model
    assert store.enqueued_tokens(MINI) == 30 and store.enqueued_tokens(FULL) == 70
    assert store.enqueued_tokens(MINI, "azure") == 5
    assert store.enqueued_tokens_by_model() == {MINI: 35, FULL: 70}
    by_profile = {("default", MINI): 30, ("default", FULL): 70, ("azure", MINI): 5}
    assert store.enqueued_tokens_by_profile_model() == by_profile


def test_status_names_the_held_model_of_a_mixed_job(store: Store) -> None:
    clock = FakeClock()
    now = clock.now()
    job = _job(store, "mixed", now)
    parts = [_part(store, "mixed", PartState.UPLOADED, 10, now, m, seg=n) for n, m in enumerate((MINI, FULL))]
    holds = Holds(store, clock)
    holds.hold_model(FULL, holds.note_token_limit(FULL, "Limit: 90,000 enqueued tokens."))
    hold = job_wait(job, parts, WaitFacts(store), now)["hold"]
    assert hold == {"kind": "token_limit", "model": FULL, "limit": 90_000, "until": now + TOKEN_LIMIT_RETRY}
    assert job_wait(job, parts[:1], WaitFacts(store), now)["hold"] is None, "the other model's part is not held"


class Rig(PartRig):
    def part(self, job: Job, model: str, segment: int) -> Part:
        """A part of ``job`` of two requests naming ``model``, uploaded and not yet a batch."""
        path = self.tmp / f"{segment}.0.jsonl"
        path.write_text(request_file(2, prefix=f"s{segment}r", model=model))
        file_id = self.upload(path)  # the emulator keeps what it is given
        now = self.clock.now()
        part = Part(job.id, segment, 0, str(path), 1 + 2 * segment, 2, path.stat().st_size, 40,
                    PartState.UPLOADED, now, now, file_id=file_id, model=model)  # fmt: skip
        return self.store.add_part(part)


@pytest.fixture(name="rig")
def rig_fixture(tmp_path: Path) -> Iterator[Rig]:
    with part_rig(tmp_path, RUNNING, Rig, token_limit=LIMIT) as rig:
        yield rig


def test_a_full_queue_of_one_model_holds_that_models_part_and_the_other_goes_ahead(rig: Rig) -> None:
    job = _job(rig.store, "20260101T000000Z-0000beef", rig.clock.now())  # split by model: no job model
    job.result_dir = str(rig.tmp / "results")
    rig.store.update_job(job.id, result_dir=job.result_dir)
    rig.fill_queue(MINI, 4)  # about 80 of MINI's 100 tokens enqueued by someone else
    mini, full = rig.part(job, MINI, 0), rig.part(job, FULL, 1)

    rig.submitter.advance(mini.id)
    rig.poller.poll_once(rig.clock.advance(1.0))  # the service refuses it: MINI's queue is full
    assert rig.store.part(mini.id).state == PartState.FINISHED
    rig.collector.collect_part(mini.id)
    assert known_limit(rig.store, MINI) == LIMIT, "the limit is learned for the part's own model"
    assert known_limit(rig.store, FULL) is None
    assert rig.store.part(mini.id).state == PartState.UPLOADED, "requeued to go again when there is room"

    rig.submitter.advance(full.id)
    rig.submitter.advance(mini.id)
    assert rig.store.part(full.id).state == PartState.SUBMITTED, "FULL's queue is not MINI's"
    held = rig.store.part(mini.id)
    assert held.state == PartState.UPLOADED and held.next_action_at == rig.clock.now() + TOKEN_LIMIT_RETRY
    assert len(rig.emulator.batches()) == 3, "MINI's part was not sent again while held"

    rig.poller.poll_once(rig.clock.advance(RUNNING + 1))
    rig.collector.collect_part(full.id)
    assert rig.store.part(full.id).state == PartState.DOWNLOADED, "FULL's batch finished and was collected"
    assert rig.emulator.batches()[-1]["status"] == "completed"


def test_status_reads_a_version_7_database_before_the_daemon_migrated_it(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    version_7_database(db, est_tokens=42, part_state="submitted")
    before = Store(db, readonly=True)  # `batchd status` before the daemon migrated it
    try:
        assert before.enqueued_tokens_by_profile_model() == {("default", MINI): 42}
        (row,) = job_rows(before, 1.0)
        assert row["models"] == [MINI]
    finally:
        before.close()
