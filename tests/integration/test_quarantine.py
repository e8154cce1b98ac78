"""A step that fails the same way on one job again and again sets that job aside (quarantine_after),
instead of retrying it for ever and holding up the others. Through the real daemon and emulator."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.intake.reports import report_path
from daemon.state import folders
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Store
from tests.integration.test_packer import small_inputs
from tests.integration.test_recheck import held_and_waiting
from tests.support import Harness, wait_until
from tests.unit.test_preparer import claimed

SET_ASIDE = "failed 3 times in a row with the same error, so batchd set it aside"


def assert_quarantined(harness: Harness, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    harness.wait_job(name, JobState.FAILED)
    report = report_path(harness.settings.failed / name).read_text()
    assert SET_ASIDE in report and "FileNotFoundError" in report, report
    assert "Nothing of this input was sent to the service." in report
    # The event is logged just after the job ends: wait for it rather than read the log at once.
    captured: list[str] = []

    def logged() -> bool:
        captured.append(capsys.readouterr().out)
        return "job_quarantined" in "".join(captured)

    wait_until(logged, what="job_quarantined in the log")
    return report


def test_an_input_the_packer_always_fails_on_is_set_aside_and_the_others_share_a_batch(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory(pack_wait=10, quarantine_after=3)
    settings = harness.settings
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        jobs = [claimed(settings, store, name, text) for name, text in small_inputs("abc", 2).items()]
        os.link(jobs[1].inflight_path, settings.root / "b-kept-by-the-user.jsonl")  # b is copied, not held
        prepare_jobs(settings, store, jobs)
        (part,) = store.parts(jobs[1].id)
        assert part.state == PartState.WAITING and part.path != jobs[1].inflight_path
        Path(part.path).unlink()  # every packing of b fails the same way
    finally:
        store.close()
    harness.start()

    for name in ("a.jsonl", "c.jsonl"):
        harness.wait_job(name)
    assert "pack" in assert_quarantined(harness, "b.jsonl", capsys)
    (batch,) = emulator.batches()
    assert batch["request_counts"]["total"] == 4, "a and c shared a batch without b"
    harness.drop("later.jsonl", small_inputs("l", 2)["l.jsonl"])
    harness.wait_job("later.jsonl")


def test_an_input_whose_upload_always_fails_is_set_aside_and_later_inputs_complete(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory(quarantine_after=3)
    settings = harness.settings
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        job = claimed(settings, store, "a.jsonl", small_inputs("a", 2)["a.jsonl"])
        prepare_jobs(settings, store, [job])  # alone: its part file is written, READY to upload
        (part,) = store.parts(job.id)
        assert part.state == PartState.READY and part.path != job.inflight_path
        Path(part.path).unlink()  # every upload of it fails the same way
    finally:
        store.close()
    harness.start()

    assert "submit" in assert_quarantined(harness, "a.jsonl", capsys)
    assert emulator.batches() == []
    harness.drop("later.jsonl", small_inputs("l", 2)["l.jsonl"])
    harness.wait_job("later.jsonl")


def test_a_shared_batch_whose_upload_always_fails_is_set_aside_and_its_inputs_go_alone(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory(pack_wait=0, quarantine_after=2)
    held_and_waiting(harness, small_inputs("ab", 2))
    store = Store(harness.settings.state / folders.DB_NAME)
    try:
        Packer(harness.settings, store, batch_limits(harness.settings), lambda: None).run()
        (pack,) = [job for job in store.jobs() if job.kind == PACK_KIND]
        (pack_part,) = store.parts(pack.id)
        Path(pack_part.path).unlink()  # every upload of the shared batch fails the same way
    finally:
        store.close()
    harness.start()

    for name in ("a.jsonl", "b.jsonl"):
        harness.wait_job(name)
        assert [r["custom_id"] for r in harness.results(name)] == ["r0", "r1"]
    assert sorted(b["request_counts"]["total"] for b in emulator.batches()) == [2, 2], "each alone, once"
    assert "job_quarantined" in capsys.readouterr().out
