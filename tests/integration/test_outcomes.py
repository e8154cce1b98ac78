"""Every terminal status ends with results for every request and the input in the right place."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.cli.cancel import cancel_one
from daemon.config import CANCEL_NOTE
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.results.failures import MAX_CODES, results_failures
from daemon.results.merger import Segment, merge
from daemon.state.states import JobState, PartState
from tests.support import FAST, Harness, fast_settings, request_file, wait_until


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


def _segment(tmp_path: Path, ran_lines: int, ran_reported: int | None) -> Segment:
    part = tmp_path / "0.0.jsonl"
    part.write_text(request_file(3))
    output = tmp_path / "out.jsonl"
    line = {"custom_id": "r0", "response": {"status_code": 200, "body": {}}, "error": None}
    output.write_text(json.dumps(line) + "\n" if ran_lines else "")
    return Segment(part, [output], "cancelled", ran_reported)


def test_a_line_of_another_request_proves_nothing(tmp_path: Path) -> None:
    segment = _segment(tmp_path, 1, 1)
    segment.downloads[0].write_text(segment.downloads[0].read_text().replace('"r0"', '"not-in-input"'))
    dest = tmp_path / "results.jsonl"
    assert merge([segment], dest) == {"not_run": 3}
    assert {json.loads(x)["error"]["code"] for x in dest.read_text().splitlines()} == {"result_missing"}


@pytest.mark.parametrize(
    ("ran_reported", "code", "message"),
    [
        (1, "batch_cancelled", "The batch was cancelled before this request ran."),
        (
            2,
            "result_missing",
            "No result was returned; the batch was cancelled. It may have run: see problems in summary.json.",
        ),
        (
            None,
            "result_missing",
            "No result was returned; the batch was cancelled. It may have run: see problems in summary.json.",
        ),
    ],
)
def test_missing_lines_claim_never_ran_only_when_the_counts_prove_it(
    tmp_path: Path, ran_reported: int | None, code: str, message: str
) -> None:
    dest = tmp_path / "results.jsonl"
    counts = merge([_segment(tmp_path, 1, ran_reported)], dest)
    assert counts == {"succeeded": 1, "not_run": 2}
    lines = [json.loads(x) for x in dest.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == ["r0", "r1", "r2"]
    assert [x["error"] for x in lines[1:]] == [{"code": code, "message": message}] * 2


def test_failures_read_codes_and_samples_from_every_line_shape(tmp_path: Path) -> None:
    def line(response: Any = None, error: Any = None) -> str:
        return json.dumps({"custom_id": "x", "response": response, "error": error}) + "\n"

    limited = {"error": {"code": "rate_limit_exceeded", "message": "Slow down.", "type": "requests"}}
    results = tmp_path / "results.jsonl"
    results.write_text(
        line({"status_code": 429, "body": limited})
        + line({"status_code": 429, "body": json.dumps(limited)})  # a JSON-string body
        + line({"status_code": 500, "body": {"error": {"type": "server_error", "message": "Oops."}}})
        + line({"status_code": 502, "body": "<html>bad gateway</html>"})
        + line(error={"code": "batch_expired", "message": "Expired."})
        + line(error="boom")
        + line({"status_code": 200, "body": {}})  # succeeded: not a failure
    )
    assert results_failures(results) == {
        "rate_limit_exceeded": {"count": 2, "sample": "Slow down."},
        "server_error": {"count": 1, "sample": "Oops."},
        "http_502": {"count": 1, "sample": "The endpoint answered HTTP 502 without an error object."},
        "batch_expired": {"count": 1, "sample": "Expired."},
        "error": {"count": 1, "sample": "boom"},
    }


def test_failure_codes_are_bounded(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    with results.open("w") as fh:
        for i in range(MAX_CODES + 20):
            fh.write(json.dumps({"custom_id": f"c{i}", "response": None, "error": {"code": f"code-{i}"}}) + "\n")
    failures = results_failures(results)
    assert len(failures) == MAX_CODES + 1
    assert failures["other"]["count"] == 20
