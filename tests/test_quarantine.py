"""A step that fails the same way on one job again and again sets that job aside (quarantine_after),
instead of retrying it for ever and holding up the others. Through the real daemon and emulator."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon import folders
from daemon.config import ConfigError, Settings, validate
from daemon.emulator import EmulatorServer
from daemon.preparer import prepare_jobs
from daemon.reports import report_path
from daemon.states import JobState, PartState
from daemon.store import Store
from tests.conftest import Harness
from tests.test_packer import small_inputs
from tests.test_preparer import claimed
from tests.test_recheck import held_and_waiting

SET_ASIDE = "failed 3 times in a row with the same error, so batchd set it aside"


def assert_quarantined(harness: Harness, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    harness.wait_job(name, JobState.FAILED)
    report = report_path(harness.settings.failed / name).read_text()
    assert SET_ASIDE in report and "FileNotFoundError" in report, report
    assert "Nothing of this input was sent to the service." in report
    assert "job_quarantined" in capsys.readouterr().out
    return report


def test_an_input_the_packer_always_fails_on_is_set_aside_and_the_others_share_a_batch(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory(pack_wait=10, quarantine_after=3)
    jobs = held_and_waiting(harness, small_inputs("abc", 2))
    os.unlink(jobs["b.jsonl"].inflight_path)  # someone cleaned state/inflight/: every packing of b fails
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
