"""Verified downloads: an output file that does not add up is fetched again, never taken as results.

The emulator tampers with GET /v1/files/{id}/content (a "tamper" fault rule): transiently (the
first download) or for good. Transient: the results end up whole and correct. For good: after
``verify_downloads_for`` what verifies is kept, the rest is reported, and nothing is deleted.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from openai.types import Batch
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.folders import DB_NAME
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.integration.test_packer import small_inputs
from tests.support import Harness, drop_before_start, fast_settings, request_file, wait_until

CONTENT = ("GET", "/v1/files/{file_id}/content")
FOR_GOOD = 1000  # tampered downloads: more than any test makes
SHORT = 0.3  # seconds a download may fail to verify before what verifies is accepted


def tamper(emulator: EmulatorServer, mode: str, count: int, lines: int = 1) -> None:
    emulator.faults.add_rule(action="tamper", mode=mode, lines=lines, count=count)


def codes(results: list[dict[str, Any]]) -> Counter[str | None]:
    return Counter((r["error"] or {}).get("code") for r in results)


def result_folder(harness: Harness, name: str) -> Path:
    job = harness.job(name)
    assert job is not None and job.result_dir
    return Path(job.result_dir)


def unmatched_lines(harness: Harness, name: str, batch_id: str) -> list[dict[str, Any]]:
    path = result_folder(harness, name) / f"{batch_id}_unmatched.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "mode", ["empty", "garbage", "bogus_json", "truncate", "drop_lines", "extra_ids", "duplicate_ids"]
)
def test_a_transient_tampered_download_is_fetched_again(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, mode: str
) -> None:
    harness = harness_factory(verify_downloads_for=60).start()
    tamper(emulator, mode, count=1)
    with capture_logs() as captured:
        harness.drop("t.jsonl", request_file(3))
        harness.wait_job("t.jsonl")
    results = harness.results("t.jsonl")
    assert [r["custom_id"] for r in results] == ["r0", "r1", "r2"]
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results), codes(results)
    summary = harness.summary("t.jsonl")
    assert summary["outcomes"] == {"succeeded": 3, "failed": 0, "not_run": 0}
    assert summary["problems"] == []
    (batch,) = emulator.batches()
    assert emulator.calls.count(*CONTENT) == 2, "the tampered download was fetched again, once"
    assert not (result_folder(harness, "t.jsonl") / f"{batch['id']}_unmatched.jsonl").exists()
    warned = [e for e in captured if e["event"] == "download_unverified"]
    assert [e["batch_id"] for e in warned] == [batch["id"]] and warned[0]["log_level"] == "warning"


@pytest.mark.parametrize(
    ("mode", "missing"), [("empty", 3), ("garbage", 3), ("bogus_json", 3), ("drop_lines", 1), ("truncate", None)]
)
def test_a_download_that_never_adds_up_ends_with_result_missing_and_keeps_the_files(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, mode: str, missing: int | None
) -> None:
    harness = harness_factory(verify_downloads_for=SHORT, delete_remote_files=True).start()
    tamper(emulator, mode, count=FOR_GOOD)
    with capture_logs() as captured:
        harness.drop("bad.jsonl", request_file(3))
        job = harness.wait_job("bad.jsonl")
    (batch,) = emulator.batches()
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 3
    results = harness.results("bad.jsonl")
    assert [r["custom_id"] for r in results] == ["r0", "r1", "r2"]
    found = codes(results)
    assert set(found) <= {None, "result_missing"} and found["result_missing"] == (missing or found["result_missing"])
    assert found["result_missing"] > 0 and found[None] == 3 - found["result_missing"]
    assert "No result was returned" in next(r for r in results if r["error"])["error"]["message"]
    assert (harness.settings.uploaded / "bad.jsonl").exists(), "the input is archived as usual"

    summary = harness.summary("bad.jsonl")
    assert summary["problems"] and {p["batch_id"] for p in summary["problems"]} == {batch["id"]}
    assert any("request_counts says 3 completed" in p["problem"] for p in summary["problems"])
    assert summary["outcomes"]["not_run"] == found["result_missing"]
    assert any(e["event"] == "download_accepted_unverified" and e["batch_id"] == batch["id"] for e in captured)
    assert all(e["log_level"] in ("warning", "error") for e in captured if e["event"].startswith("download_"))

    # Hygiene keeps the batch's files: another input's files are deleted, these stay.
    assert harness.store is not None
    kept = {f.file_id: f.state for f in harness.store.remote_files(job.id)}
    assert kept == dict.fromkeys([batch["input_file_id"], batch["output_file_id"]], "kept")
    emulator.faults.clear()
    harness.drop("clean.jsonl", request_file(2))
    harness.wait_job("clean.jsonl")
    wait_until(lambda: len(emulator.files()) == 2, what="the clean input's files to be deleted")
    assert {f["id"] for f in emulator.files()} == set(kept)


@pytest.mark.parametrize("mode", ["extra_ids", "duplicate_ids"])
def test_extra_and_duplicate_ids_are_kept_apart_and_reported(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, mode: str
) -> None:
    harness = harness_factory(verify_downloads_for=SHORT).start()
    tamper(emulator, mode, count=FOR_GOOD, lines=2)
    harness.drop("odd.jsonl", request_file(3))
    harness.wait_job("odd.jsonl")
    (batch,) = emulator.batches()
    results = harness.results("odd.jsonl")
    assert codes(results) == {None: 3}, "every request has its one true result"
    assert not any(r["id"].startswith("batch_req_duplicate") for r in results), "the first line of an id wins"
    apart = unmatched_lines(harness, "odd.jsonl", batch["id"])
    assert len(apart) == 2
    if mode == "extra_ids":
        assert {r["custom_id"] for r in apart} == {"emulator-extra-0", "emulator-extra-1"}
    else:
        assert all(r["id"].startswith("batch_req_duplicate") for r in apart)
        assert {r["custom_id"] for r in apart} < {"r0", "r1", "r2"}
    raw = (result_folder(harness, "odd.jsonl") / f"{batch['id']}_output.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in raw) == ["r0", "r1", "r2"], "the raw file holds the rest"
    problems = harness.summary("odd.jsonl")["problems"]
    assert [p["batch_id"] for p in problems] == [batch["id"]]
    assert "2 line(s) with a custom_id" in problems[0]["problem"]


def test_a_shared_batch_that_never_adds_up_reports_to_every_input(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10, verify_downloads_for=SHORT)
    drop_before_start(harness, small_inputs("ab", 3))
    tamper(emulator, "duplicate_ids", count=FOR_GOOD, lines=6)  # every line twice
    harness.start()
    for name in ("a.jsonl", "b.jsonl"):
        harness.wait_job(name)
    (batch,) = emulator.batches()
    assert batch["request_counts"]["total"] == 6, "one batch carried both inputs"
    for name in ("a.jsonl", "b.jsonl"):
        results = harness.results(name)
        assert [r["custom_id"] for r in results] == ["r0", "r1", "r2"] and codes(results) == {None: 3}
        apart = unmatched_lines(harness, name, batch["id"])
        assert sorted(r["custom_id"] for r in apart) == ["r0", "r1", "r2"], "its own duplicates, its own ids"
        assert not any(r["id"].startswith("batch_req_duplicate") for r in results)
        problems = harness.summary(name)["problems"]
        assert {p["batch_id"] for p in problems} == {batch["id"]}
        assert any("6 line(s) with a custom_id already seen" in p["problem"] for p in problems)


def test_a_transient_tamper_of_a_shared_batch_leaves_no_trace(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10, verify_downloads_for=60)
    drop_before_start(harness, small_inputs("ab", 3))
    tamper(emulator, "drop_lines", count=1, lines=2)
    harness.start()
    for name in ("a.jsonl", "b.jsonl"):
        assert harness.wait_job(name).state == JobState.DONE
        assert codes(harness.results(name)) == {None: 3}
        assert harness.summary(name)["problems"] == []
    assert len(emulator.batches()) == 1 and emulator.calls.count(*CONTENT) == 2


def test_a_shared_batch_missing_lines_gives_result_missing_only_where_lines_are_missing(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10, verify_downloads_for=SHORT)
    drop_before_start(harness, small_inputs("ab", 3))
    tamper(emulator, "drop_lines", count=FOR_GOOD, lines=2)
    harness.start()
    missing = Counter[str | None]()
    for name in ("a.jsonl", "b.jsonl"):
        harness.wait_job(name)
        missing += codes(harness.results(name))
        assert harness.summary(name)["problems"], "both inputs shared the batch that did not add up"
    assert missing == {None: 4, "result_missing": 2}
    assert len(emulator.batches()) == 1, "requests whose result is missing are never sent again"


def test_an_expired_batch_short_of_results_is_not_resubmitted(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(verify_downloads_for=SHORT)
    tamper(emulator, "empty", count=FOR_GOOD)
    harness.start()
    harness.drop("exp.jsonl", request_file(8, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    assert len(emulator.batches()) == 1, "requests that may have run are never sent twice"
    found = codes(harness.results("exp.jsonl"))
    assert found["result_missing"] == 8
    assert harness.summary("exp.jsonl")["problems"]


def test_zero_window_accepts_at_once(harness_factory: Callable[..., Harness], emulator: EmulatorServer) -> None:
    harness = harness_factory(verify_downloads_for=0).start()
    tamper(emulator, "drop_lines", count=1)
    harness.drop("z.jsonl", request_file(3))
    harness.wait_job("z.jsonl")
    assert emulator.calls.count(*CONTENT) == 1, "no second download"
    assert codes(harness.results("z.jsonl")) == {None: 2, "result_missing": 1}


def test_an_output_file_the_service_no_longer_has_is_reported_as_result_missing(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(verify_downloads_for=60).start()
    emulator.faults.add_rule(action="status", status=404, method="GET", path_prefix="/v1/files/", count=FOR_GOOD)
    harness.drop("gone.jsonl", request_file(3))
    harness.wait_job("gone.jsonl")
    (batch,) = emulator.batches()
    assert codes(harness.results("gone.jsonl")) == {"result_missing": 3}, "they ran: never 'not run'"
    (problem,) = harness.summary("gone.jsonl")["problems"]
    assert problem["batch_id"] == batch["id"] and "could not be downloaded" in problem["problem"]
    assert problem["service_files_kept"] == [batch["input_file_id"], batch["output_file_id"]]
    assert len(emulator.batches()) == 1


def test_a_stale_batch_object_is_asked_for_again(tmp_path: Path) -> None:
    """The terminal reply said completed but named no output file yet: the next try asks again."""
    slow = EmulatorSettings(
        validating_seconds=0.05, in_progress_seconds=1.0, finalizing_seconds=0.05, data_dir=tmp_path / "emu"
    )
    with EmulatorServer(slow) as emulator:
        root = tmp_path / "root"
        root.mkdir()
        settings = fast_settings(root, emulator.base_url, verify_downloads_for=60)
        first = Harness(settings, emulator).start()
        first.drop("s.jsonl", request_file(3))
        job = wait_until(lambda: (j := first.job("s.jsonl")) and j.state == JobState.ACTIVE and j)
        store = first.store
        assert store is not None
        (part,) = wait_until(lambda: [p for p in store.parts(job.id) if p.state == PartState.SUBMITTED])
        first.stop()
        (batch,) = wait_until(lambda: [b for b in emulator.batches() if b["status"] == "completed"])
        # Stored the way versions before the service seam stored it: the SDK's Batch as JSON.
        stale = Batch.model_validate({**batch, "output_file_id": None})
        with closing(Store(settings.state / DB_NAME)) as db:
            assert db.part(part.id).state == PartState.SUBMITTED, "not collected before the stop"
            db.update_part(
                part.id, state=PartState.FINISHED, batch_status="completed", batch_json=stale.model_dump_json()
            )
        second = Harness(settings, emulator).start()
        try:
            second.wait_job("s.jsonl")
            assert codes(second.results("s.jsonl")) == {None: 3}
            assert second.summary("s.jsonl")["problems"] == []
            assert emulator.calls.count(*CONTENT) == 1
        finally:
            second.stop()


def test_each_new_download_waits_for_the_scheduled_back_off(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(verify_downloads_for=60).start()
    tamper(emulator, "truncate", count=2)
    harness.drop("long.jsonl", request_file(3))
    job = harness.wait_job("long.jsonl")
    assert codes(harness.results("long.jsonl")) == {None: 3}
    assert emulator.calls.count(*CONTENT) == 3
    assert harness.store is not None
    (part,) = harness.store.parts(job.id)
    assert part.tries == 2 and "did not add up" in (part.last_error or ""), "each retry on the scheduled back-off"
