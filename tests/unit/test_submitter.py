"""Reconcile, unit by unit: a part found at an intent adopts what the service already has."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import openai
import pytest

from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service.credentials import KeySource
from daemon.service.holds import Holds
from daemon.service.openai_service import OpenAIService
from daemon.service.submitter import Submitter, batch_metadata
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import FAST, TEST_KEY, request_file

ENDPOINT: Final = "/v1/chat/completions"
CANCEL_ROUTE = "/v1/batches/{batch_id}/cancel"


class Clock:
    """The emulator's notion of now, moved by hand so two batches differ in created_at."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    emulator: EmulatorServer
    clock: Clock
    settings: Settings
    store: Store
    remote: OpenAIService
    client: openai.OpenAI
    submitter: Submitter
    tmp: Path

    def job(self, job_id: str = "20260101T000000Z-0000beef") -> Job:
        now = time.time()
        job = Job(
            job_id,
            "in.jsonl",
            str(self.tmp / "in.jsonl"),
            str(self.tmp / f"{job_id}.jsonl"),
            JobState.ACTIVE,
            now,
            now,
            sha256="ab" * 32,
            endpoint=ENDPOINT,
            model="gpt-4o-mini",
            request_count=2,
        )
        self.store.add_job(job)
        return job

    def part(self, job: Job, state: PartState, file_id: str | None = None) -> Part:
        path = self.tmp / f"{job.id}-0.jsonl"
        path.write_text(request_file(2))
        now = time.time()
        part = Part(
            job.id, 0, 0, str(path), 1, 2, path.stat().st_size, 50, state, now, now, file_id=file_id, intent_at=now
        )
        return self.store.add_part(part)

    def upload(self, name: str) -> str:
        with open(self.tmp / "upload.jsonl", "w+b") as fh:
            fh.write(request_file(2).encode())
            fh.seek(0)
            return self.client.files.create(file=(name, fh, "application/jsonl"), purpose="batch").id

    def create_batch(self, file_id: str, metadata: dict[str, str]) -> str:
        batch = self.client.batches.create(
            input_file_id=file_id, endpoint=ENDPOINT, completion_window="24h", metadata=metadata
        )
        return batch.id

    def statuses(self) -> dict[str, str]:
        return {b["id"]: b["status"] for b in self.emulator.batches()}


@pytest.fixture(name="rig")
def rig_fixture(tmp_path: Path) -> Iterator[Rig]:
    clock = Clock()
    emulator_settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator")  # type: ignore[arg-type]
    with EmulatorServer(emulator_settings, clock=clock) as emulator:
        settings = Settings(root=tmp_path, base_url=emulator.base_url, request_timeout=5.0)
        store = Store(tmp_path / "state.sqlite3")
        remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 5.0)
        client = openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
        submitter = Submitter(settings, store, remote, Holds(store), threading.Event())
        try:
            yield Rig(emulator, clock, settings, store, remote, client, submitter, tmp_path)
        finally:
            client.close()
            remote.close()
            store.close()


def test_batch_intent_adopts_the_batch_that_already_exists(rig: Rig) -> None:
    job = rig.job()
    file_id = rig.upload("batchd-upload.jsonl")
    part = rig.part(job, PartState.BATCH_INTENT, file_id)
    # A batch for another job's part "0.0" must not be mistaken for ours.
    decoy = rig.create_batch(file_id, {**batch_metadata(rig.settings, job, part), "batchd_job": "someone-else"})
    existing = rig.create_batch(file_id, batch_metadata(rig.settings, job, part))

    rig.submitter.advance(part.id)

    after = rig.store.part(part.id)
    assert after.state == PartState.SUBMITTED
    assert after.batch_id == existing
    assert set(rig.statuses()) == {decoy, existing}  # no second batch for the part
    assert rig.emulator.calls.count("POST", "/v1/batches") == 2  # both made by this test
    assert rig.emulator.calls.count("POST", CANCEL_ROUTE) == 0


def test_batch_intent_with_two_matches_keeps_the_oldest_and_cancels_the_other(rig: Rig) -> None:
    job = rig.job()
    file_id = rig.upload("batchd-upload.jsonl")
    part = rig.part(job, PartState.BATCH_INTENT, file_id)
    metadata = batch_metadata(rig.settings, job, part)
    older = rig.create_batch(file_id, metadata)
    rig.clock.now += 5  # an earlier double-create: the second one a few seconds later
    newer = rig.create_batch(file_id, metadata)

    rig.submitter.advance(part.id)

    assert rig.store.part(part.id).batch_id == older
    statuses = rig.statuses()
    assert statuses[newer] in ("cancelling", "cancelled")
    assert statuses[older] not in ("cancelling", "cancelled")
    assert len(statuses) == 2
    assert rig.emulator.calls.count("POST", CANCEL_ROUTE) == 1


def test_batch_intent_with_two_matches_in_the_same_second_keeps_exactly_one(rig: Rig) -> None:
    job = rig.job()
    file_id = rig.upload("batchd-upload.jsonl")
    part = rig.part(job, PartState.BATCH_INTENT, file_id)
    metadata = batch_metadata(rig.settings, job, part)
    both = {rig.create_batch(file_id, metadata), rig.create_batch(file_id, metadata)}

    rig.submitter.advance(part.id)
    rig.submitter.advance(part.id)  # already submitted: nothing more happens

    kept = rig.store.part(part.id).batch_id
    assert kept in both
    statuses = rig.statuses()
    assert statuses[kept] not in ("cancelling", "cancelled")
    assert [statuses[b] for b in both - {kept}] in (["cancelling"], ["cancelled"])
    assert rig.emulator.calls.count("POST", CANCEL_ROUTE) == 1


def test_upload_intent_adopts_the_file_that_already_exists(rig: Rig) -> None:
    job = rig.job()
    part = rig.part(job, PartState.UPLOAD_INTENT)
    uploaded = rig.upload(part.upload_name)  # the upload went through, its answer was lost

    rig.submitter.advance(part.id)

    after = rig.store.part(part.id)
    assert after.file_id == uploaded
    assert after.state == PartState.SUBMITTED
    assert rig.emulator.calls.count("POST", "/v1/files") == 1  # not uploaded again
    (batch,) = rig.emulator.batches()
    assert batch["input_file_id"] == uploaded
    assert batch["metadata"]["batchd_job"] == job.id and batch["metadata"]["batchd_part"] == "0.0"


def test_garbage_reply_to_a_create_that_went_through_is_reconciled(rig: Rig) -> None:
    job = rig.job()
    part = rig.part(job, PartState.UPLOADED, rig.upload("batchd-upload.jsonl"))
    rig.emulator.faults.add_rule(
        action="reply", method="POST", path_prefix="/batches", body="<html>", content_type="text/html", count=5,
        after_processing=True,
    )  # fmt: skip

    rig.submitter.advance(part.id)

    after = rig.store.part(part.id)
    assert after.state == PartState.SUBMITTED
    assert [after.batch_id] == list(rig.statuses()), "the batch the garbage answered for is adopted"
    assert rig.emulator.calls.count("POST", "/v1/batches") == 1


def test_garbage_replies_to_a_create_keep_the_intent_and_never_reject(rig: Rig) -> None:
    job = rig.job()
    part = rig.part(job, PartState.UPLOADED, rig.upload("batchd-upload.jsonl"))
    rig.emulator.faults.add_rule(action="reply", method="POST", path_prefix="/batches", body='{"id": 5}', count=100)

    rig.submitter.advance(part.id)  # every quick retry is answered with garbage

    held = rig.store.part(part.id)
    assert held.state == PartState.BATCH_INTENT, "kept: the next try searches for the batch first"
    assert held.last_error is not None and "malformed reply to batches.create: id" in held.last_error
    assert held.tries == 1 and held.next_action_at > time.time()
    assert rig.statuses() == {}
    rig.emulator.faults.clear()

    rig.submitter.advance(part.id)

    after = rig.store.part(part.id)
    assert after.state == PartState.SUBMITTED and after.batch_id in rig.statuses()
    assert len(rig.statuses()) == 1
