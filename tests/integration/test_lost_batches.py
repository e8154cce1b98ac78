"""A batch the service no longer knows ends its part after a grace; a sighting resets the grace."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from structlog.testing import capture_logs

from daemon.cli.retry import requeue
from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import Harness, drop_before_start, request_file, wait_until


def test_a_vanished_batch_ends_its_part_and_the_job_keeps_what_finished(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(lost_batch_grace=0.5, max_requests_per_batch=2, pack_inputs_up_to=0).start()
    emulator.mishaps.vanish_next(1)  # one of the two parts' batches
    with capture_logs() as captured:
        harness.drop("gone.jsonl", request_file(4))
        job = harness.wait_job("gone.jsonl", JobState.FAILED)
    (lost,) = emulator.mishaps.snapshot()["vanished"]
    results = harness.results("gone.jsonl")
    assert [r["custom_id"] for r in results] == ["r0", "r1", "r2", "r3"]
    codes = Counter((r["error"] or {}).get("code") for r in results)
    assert codes == {None: 2, "batch_lost": 2}, "the other part's results are kept"
    assert all("no longer knows this batch" in r["error"]["message"] for r in results if r["error"])
    assert harness.summary("gone.jsonl")["outcomes"] == {"succeeded": 2, "failed": 0, "not_run": 2}
    report = (harness.settings.failed / "gone.jsonl.report.txt").read_text()
    assert lost in report and "batchd retry gone.jsonl" in report and "paid" in report
    assert (harness.settings.failed / "gone.jsonl").exists() and job.note and lost in job.note
    events = [e for e in captured if e["event"] == "batch_lost"]
    assert [(e["job_id"], e["batch_id"], e["log_level"]) for e in events] == [(job.id, lost, "error")]
    requeue(harness.settings, "gone.jsonl")  # what the report advises
    store = harness.store
    assert store is not None
    wait_until(lambda: len([j for j in store.jobs() if j.source_name == "gone.jsonl"]) == 2, what="the retry claimed")
    assert harness.wait_job("gone.jsonl", JobState.DONE).id != job.id


def test_a_batch_seen_again_within_the_grace_is_collected(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(lost_batch_grace=30.0).start()
    emulator.mishaps.vanish_next(1)
    with capture_logs() as captured:
        harness.drop("back.jsonl", request_file(3))
        wait_until(lambda: any(e["event"] == "batch_not_found" for e in captured), what="a 404 noticed")
        (batch_id,) = emulator.mishaps.snapshot()["vanished"]
        emulator.mishaps.restore(batch_id)
        harness.wait_job("back.jsonl", JobState.DONE)
    assert harness.summary("back.jsonl")["outcomes"]["succeeded"] == 3
    assert any(e["event"] == "batch_found_again" and e["batch_id"] == batch_id for e in captured)
    (noticed,) = [e for e in captured if e["event"] == "batch_not_found"]
    assert "batchd abandon" in noticed["hint"], "the first 404 says what happens next and how to end it now"


def test_a_lost_shared_batch_ends_every_input_it_carried(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(lost_batch_grace=0.5, pack_wait=5.0)
    # Both there before the start, so one pass claims them together and they share a batch.
    drop_before_start(harness, {"a.jsonl": request_file(2, prefix="a"), "b.jsonl": request_file(3, prefix="b")})
    emulator.mishaps.vanish_next(1)
    harness.start()
    for name, count in (("a.jsonl", 2), ("b.jsonl", 3)):
        harness.wait_job(name, JobState.FAILED)
        assert [(r["error"] or {}).get("code") for r in harness.results(name)] == ["batch_lost"] * count
        assert "batchd retry" in (harness.settings.failed / f"{name}.report.txt").read_text()
    assert len(emulator.batches()) == 1, "both travelled in the one shared batch"
