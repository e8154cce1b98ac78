"""A step that fails the same way on one job again and again sets that job aside (quarantine_after),
instead of retrying it for ever and holding up the others. Through the real daemon and emulator."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import Settings, validate
from daemon.emulator import EmulatorServer
from daemon.errors import ConfigError
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.intake.quarantine import Quarantine
from daemon.intake.reports import report_path
from daemon.state import folders
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Part, Store
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


def test_quarantine_after_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quarantine_after"):
        validate(Settings(root=tmp_path, quarantine_after=0))


def quarantine_in(tmp_path: Path) -> tuple[Settings, Store]:
    settings = Settings(root=tmp_path, quarantine_after=2)
    folders.prepare(settings)
    return settings, Store(settings.state / folders.DB_NAME)


def always_fails() -> None:
    raise TypeError("'int' object is not subscriptable")


def test_a_job_with_a_batch_is_never_set_aside_its_step_keeps_being_retried(tmp_path: Path) -> None:
    settings, store = quarantine_in(tmp_path)
    try:
        job = claimed(settings, store, "a.jsonl", small_inputs("a", 2)["a.jsonl"])
        now = job.created_at
        store.update_job(job.id, state=JobState.ACTIVE)
        part = Part(job.id, 0, 0, "p", 1, 2, 10, 3, PartState.FINISHED, now, now, batch_id="batch_paid")
        store.add_part(part)
        guard = Quarantine(settings, store)
        for _ in range(4):
            with pytest.raises(TypeError):
                guard.guard(job.id, "download", always_fails)
        assert store.job(job.id).state == JobState.ACTIVE, "paid work is never set aside"
        assert Path(job.inflight_path).exists() and not any(settings.failed.iterdir())
    finally:
        store.close()


def test_a_full_disk_is_not_counted_against_a_job(tmp_path: Path) -> None:
    settings, store = quarantine_in(tmp_path)
    try:
        job = claimed(settings, store, "a.jsonl", small_inputs("a", 2)["a.jsonl"])

        def disk_full() -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        guard = Quarantine(settings, store)
        for _ in range(4):
            with pytest.raises(OSError, match="No space"):
                guard.guard(job.id, "check", disk_full, contain=True)
        assert store.job(job.id).state == JobState.CLAIMED
    finally:
        store.close()


def test_different_errors_are_not_the_same_failure_and_a_success_starts_the_count_again(tmp_path: Path) -> None:
    settings, store = quarantine_in(tmp_path)
    try:
        job = claimed(settings, store, "a.jsonl", small_inputs("a", 2)["a.jsonl"])
        guard = Quarantine(settings, store)

        def other_error() -> None:
            raise KeyError("custom_id")

        for work in (always_fails, other_error, always_fails, lambda: None, always_fails):
            guard.guard(job.id, "check", work, contain=True)
        assert store.job(job.id).state == JobState.CLAIMED
        guard.guard(job.id, "check", always_fails, contain=True)
        assert store.job(job.id).state == JobState.FAILED, "the second same failure in a row"
        assert (settings.failed / "a.jsonl").exists()
    finally:
        store.close()


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
