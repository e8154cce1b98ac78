"""Every terminal status ends with results for every request and the input in the right place."""

from __future__ import annotations

import json
from collections import Counter

from daemon.canceller import cancel_one
from daemon.config import CANCEL_NOTE
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.states import JobState, PartState
from tests.conftest import Harness, fast_settings, request_file, wait_until


def _inputs_sent(emulator: EmulatorServer) -> Counter[str]:
    """How many times each custom_id was uploaded, over every batch input file."""
    sent: Counter[str] = Counter()
    for f in emulator.files():
        if f["purpose"] == "batch":
            sent.update(json.loads(line)["custom_id"] for line in emulator.file_bytes(f["id"]).splitlines())
    return sent


def test_expired_keeps_what_finished_without_resubmitting(harness_factory) -> None:
    harness = harness_factory(resubmit_unfinished=frozenset()).start()
    harness.drop("exp.jsonl", request_file(10, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    results = harness.results("exp.jsonl")
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(10)]
    codes = Counter((r["error"] or {}).get("code") for r in results)
    assert codes[None] > 0 and codes["batch_expired"] > 0
    assert codes[None] + codes["batch_expired"] == 10
    assert harness.summary("exp.jsonl")["batches"][0]["status"] == "expired"


def _succeeded_ids(emulator: EmulatorServer, batch: dict[str, object]) -> set[str]:
    if not batch.get("output_file_id"):
        return set()
    lines = [json.loads(x) for x in emulator.file_bytes(str(batch["output_file_id"])).splitlines()]
    return {x["custom_id"] for x in lines if x["error"] is None and x["response"]["status_code"] == 200}


def _input_ids(emulator: EmulatorServer, batch: dict[str, object]) -> set[str]:
    return {json.loads(x)["custom_id"] for x in emulator.file_bytes(str(batch["input_file_id"])).splitlines()}


def test_expired_resubmits_only_unfinished_requests(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("exp.jsonl", request_file(8, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    results = harness.results("exp.jsonl")
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(8)]
    batches = sorted(emulator.batches(), key=lambda b: (b["created_at"], b["id"]))
    assert len(batches) > 1, "the unfinished requests must have gone again"
    for i, earlier in enumerate(batches):
        done = _succeeded_ids(emulator, earlier)
        for later in batches[i + 1 :]:
            assert not done & _input_ids(emulator, later), "a request that succeeded was sent again"
    assert len(_input_ids(emulator, batches[1])) < 8
    succeeded = {r["custom_id"] for r in results if r["error"] is None}
    assert harness.summary("exp.jsonl")["outcomes"]["succeeded"] == len(succeeded) > 0


def test_failed_batch_moves_input_to_failed_with_report(harness: Harness) -> None:
    harness.drop("val.jsonl", request_file(3, model="gpt-fail-validation"))
    harness.wait_job("val.jsonl", JobState.FAILED)
    report = (harness.settings.failed / "val.jsonl.report.txt").read_text()
    assert "refused" in report
    results = harness.results("val.jsonl")
    assert {r["error"]["code"] for r in results} == {"batch_failed"}


def test_completed_with_every_request_failed(harness: Harness) -> None:
    harness.drop("all-bad.jsonl", request_file(4, model="gpt-fail-all"))
    harness.wait_job("all-bad.jsonl")
    results = harness.results("all-bad.jsonl")
    assert len(results) == 4
    assert all(r["response"]["status_code"] >= 400 for r in results)
    assert harness.summary("all-bad.jsonl")["outcomes"] == {"succeeded": 0, "failed": 4, "not_run": 0}


def test_cancel_collects_what_finished(tmp_path) -> None:
    slow = EmulatorSettings(
        validating_seconds=0.05,
        in_progress_seconds=30,
        finalizing_seconds=0.05,
        cancelling_seconds=0.1,
        data_dir=tmp_path / "slow-emulator",
    )
    with EmulatorServer(slow) as emulator:
        root = tmp_path / "root"
        root.mkdir()
        harness = Harness(fast_settings(root, emulator.base_url), emulator).start()
        try:
            harness.drop("slow.jsonl", request_file(6))
            job = wait_until(lambda: (j := harness.job("slow.jsonl")) and j.state == JobState.ACTIVE and j)
            store, remote = harness.store, harness.remote
            assert store is not None
            assert remote is not None
            wait_until(lambda: any(p.state == PartState.SUBMITTED for p in store.parts(job.id)))
            cancel_one(store, remote, store.job(job.id))
            done = harness.wait_job("slow.jsonl")
            assert done.note == CANCEL_NOTE
            assert len(harness.results("slow.jsonl")) == 6
            assert harness.summary("slow.jsonl")["batches"][0]["status"] == "cancelled"
            assert len(emulator.batches()) == 1  # a cancelled job is never resubmitted
        finally:
            harness.stop()
