"""Every terminal status ends with results for every request and the input in the right place."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from daemon.cli.cancel import cancel_one
from daemon.config import CANCEL_NOTE
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState, PartState
from tests.support import FAST, Harness, fast_settings, request_file, wait_until


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
    batches = emulator.batches()  # in the order they were created (created_at has whole seconds only)
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


def test_expired_requests_are_grouped_in_the_summary(harness_factory) -> None:
    harness = harness_factory(resubmit_unfinished=frozenset()).start()
    harness.drop("exp.jsonl", request_file(10, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    expired = [r for r in harness.results("exp.jsonl") if r["error"]]
    failures = harness.summary("exp.jsonl")["failures"]
    assert failures == {"batch_expired": {"count": len(expired), "sample": expired[0]["error"]["message"]}}


def _own_emulator(tmp_path: Path, **changes: Any) -> EmulatorServer:
    return EmulatorServer(EmulatorSettings(**{**FAST, "data_dir": tmp_path / "emulator-data", **changes}))


def test_every_request_failing_is_counted_warned_and_grouped(tmp_path: Path) -> None:
    with _own_emulator(tmp_path, request_error_rate=1.0) as emulator:
        harness = Harness(fast_settings(_root(tmp_path), emulator.base_url), emulator).start()
        try:
            with capture_logs() as captured:
                harness.drop("bad.jsonl", request_file(6))
                job = harness.wait_job("bad.jsonl")
            summary = harness.summary("bad.jsonl")
        finally:
            harness.stop()
    assert summary["outcomes"] == {"succeeded": 0, "failed": 6, "not_run": 0}
    [(code, entry)] = summary["failures"].items()
    assert code == "emulated_request_error" and entry["count"] == 6
    assert entry["sample"].startswith("Emulated request failure for custom_id 'r")
    [warning] = [e for e in captured if e["event"] == "requests_unsuccessful"]
    assert warning["log_level"] == "warning" and warning["job_id"] == job.id
    assert (warning["succeeded"], warning["failed"], warning["not_run"]) == (0, 6, 0)
    assert warning["codes"] == {"emulated_request_error": 6}


def test_all_succeeded_logs_no_warning(harness: Harness) -> None:
    with capture_logs() as captured:
        harness.drop("fine.jsonl", request_file(3))
        harness.wait_job("fine.jsonl")
    assert any(e["event"] == "results_written" for e in captured)
    assert not [e for e in captured if e["event"] == "requests_unsuccessful"]
    assert harness.summary("fine.jsonl")["failures"] == {}


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


def test_cancelled_batch_that_dropped_finished_results_claims_nothing(tmp_path: Path) -> None:
    """The server counted requests as done but sent no line for them: they may have run."""
    slow = {"in_progress_seconds": 4.0, "drop_cancelled_results": True}
    with _own_emulator(tmp_path, **slow) as emulator:
        # Downloads that cannot add up are accepted at once (verification is tested on its own).
        settings = fast_settings(_root(tmp_path), emulator.base_url, verify_downloads_for=0)
        harness = Harness(settings, emulator).start()
        try:
            harness.drop("drop.jsonl", request_file(40))
            job = wait_until(lambda: (j := harness.job("drop.jsonl")) and j.state == JobState.ACTIVE and j)
            wait_until(lambda: (b := emulator.batches()) and b[0]["request_counts"]["completed"] >= 5, what="progress")
            assert harness.store is not None and harness.remote is not None
            cancel_one(harness.store, harness.remote, harness.store.job(job.id))
            harness.wait_job("drop.jsonl")
            results = harness.results("drop.jsonl")
            summary = harness.summary("drop.jsonl")
        finally:
            harness.stop()
    counts = summary["batches"][0]["request_counts"]
    ran = counts["completed"] + counts["failed"]
    assert 5 <= ran < 40
    missing = [r for r in results if r["error"]["code"] == "result_missing"]
    assert len(missing) == ran
    assert {r["error"]["message"] for r in missing} == {
        "No result was returned; the batch was cancelled. It may have run: see problems in summary.json."
    }
    assert not any("before this request ran" in r["error"]["message"] for r in missing)
    assert summary["failures"]["result_missing"]["count"] == ran
    assert summary["failures"]["batch_cancelled"]["count"] == 40 - ran  # the server's own lines
