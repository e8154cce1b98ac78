"""A step that fails the same way on one job again and again sets that job aside (quarantine_after),
instead of retrying it for ever and holding up the others. Through the real daemon and emulator."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from daemon.config import Settings, validate
from daemon.errors import ConfigError
from daemon.intake.quarantine import Quarantine
from daemon.state import folders
from daemon.state.rows import Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.integration.test_packer import small_inputs
from tests.unit.test_preparer import claimed


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
