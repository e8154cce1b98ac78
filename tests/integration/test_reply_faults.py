"""Malformed 200 replies through the real engine: reconciled and retried, never a verdict on the input."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.service import poller
from tests.support import Harness, request_file

IDS = [f"r{i}" for i in range(4)]


@pytest.fixture(autouse=True)
def _quick_poll_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poller, "FIRST_ERROR_BACKOFF", 0.1)
    monkeypatch.setattr(poller, "ERROR_BACKOFF", 0.2)


def _batches_per_job(emulator: EmulatorServer) -> Counter[str]:
    return Counter(b["metadata"]["batchd_job"] for b in emulator.batches())


def _assert_done_once(harness: Harness, emulator: EmulatorServer, name: str) -> None:
    """Every request answered, exactly one batch paid for the input, nothing in failed/."""
    job = harness.wait_job(name)
    results = harness.results(name)
    assert [r["custom_id"] for r in results] == IDS
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results)
    assert _batches_per_job(emulator) == {job.id: 1}
    assert not list(harness.settings.failed.iterdir())


@pytest.mark.parametrize("after_processing", [False, True])
def test_upload_answered_with_a_numeric_id_is_reconciled(
    harness: Harness, emulator: EmulatorServer, after_processing: bool
) -> None:
    emulator.faults.add_rule(
        action="reply", method="POST", path_prefix="/files", body='{"id": 5}', after_processing=after_processing
    )
    with capture_logs() as logs:
        harness.drop("five.jsonl", request_file(len(IDS)))
        _assert_done_once(harness, emulator, "five.jsonl")
    assert emulator.faults.fired == 1
    uploads = [e for e in logs if e["event"] == "file_uploaded"]
    assert [e["adopted"] for e in uploads] == [after_processing], "a file that was created is adopted"
    assert all(e["file_id"] != "5" for e in uploads)
    assert [e["call"] for e in logs if e["event"] == "reply_malformed"] == ["files.create"]


def test_html_page_for_batch_create_after_processing_is_reconciled(harness: Harness, emulator: EmulatorServer) -> None:
    emulator.faults.add_rule(
        action="reply",
        method="POST",
        path_prefix="/batches",
        body="<html><body>Bad gateway</body></html>",
        content_type="text/html",
        after_processing=True,
    )
    with capture_logs() as logs:
        harness.drop("html.jsonl", request_file(len(IDS)))
        _assert_done_once(harness, emulator, "html.jsonl")
    assert emulator.faults.fired == 1
    assert [e["adopted"] for e in logs if e["event"] == "batch_submitted"] == [True]
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == [], "a fault, not a crash"
    assert [e["call"] for e in logs if e["event"] == "reply_malformed"] == ["batches.create"]


def test_malformed_retrieve_replies_are_retried_until_the_job_completes(
    harness: Harness, emulator: EmulatorServer
) -> None:
    garbage = json.dumps({"id": "batch_x", "status": ["completed"], "created_at": "now"})
    emulator.faults.add_rule(action="reply", method="GET", path_prefix="/batches/", body=garbage, count=3)
    with capture_logs() as logs:
        harness.drop("poll.jsonl", request_file(len(IDS)))
        _assert_done_once(harness, emulator, "poll.jsonl")
    assert emulator.faults.fired == 3
    assert [e["call"] for e in logs if e["event"] == "reply_malformed"] == ["batches.retrieve"] * 3
    assert sum(e["event"] == "batch_poll_deferred" for e in logs) == 3


def test_a_malformed_listing_does_not_stop_polling_the_other_batches(
    harness: Harness, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller, "LIST_WHEN_AT_LEAST", 1)  # poll through batches.list
    emulator.faults.add_rule(action="reply", method="GET", path_prefix="/batches", body="<html></html>", count=2)

    with capture_logs() as logs:
        harness.drop("list.jsonl", request_file(len(IDS)))
        _assert_done_once(harness, emulator, "list.jsonl")
    assert emulator.faults.fired == 2
    assert [e["call"] for e in logs if e["event"] == "reply_malformed"] == ["batches.list"] * 2
    assert not [e for e in logs if e["event"] == "poll_crashed"]


def test_random_malformed_replies_lose_nothing_and_pay_nothing_twice(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_inputs_up_to=0).start()  # a batch each: more calls to garble
    names = [f"chaos{i}.jsonl" for i in range(4)]
    emulator.faults.set_reply_rate(0.4, count=12)
    with capture_logs() as logs:
        for name in names:
            harness.drop(name, request_file(len(IDS)))
        jobs = [harness.wait_job(name, timeout=30.0) for name in names]
    assert emulator.faults.fired >= 3, "the chaos did happen"
    for name in names:
        assert [r["custom_id"] for r in harness.results(name) if r["error"] is None] == IDS
    assert _batches_per_job(emulator) == {job.id: 1 for job in jobs}
    assert not list(harness.settings.failed.iterdir())
    assert not [e["event"] for e in logs if e["log_level"] in ("error", "critical")]
