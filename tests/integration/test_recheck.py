"""A held input that changes after it was checked: it goes alone to failed/ with a report saying so,
nothing unchecked is sent, and the other inputs go on. Through the real daemon and emulator."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.intake.preparer import prepare_jobs
from daemon.intake.reports import report_path
from daemon.state import folders
from daemon.state.rows import Job
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.integration.test_packer import small_inputs
from tests.support import FAST, Harness, drop_before_start, fast_settings, request_line, wait_until
from tests.unit.test_preparer import claimed

CHANGED = "changed after it was checked"
VALID_EXTRA = request_line("sneaked-in") + "\n"


def held_and_waiting(harness: Harness, files: dict[str, str]) -> dict[str, Job]:
    """Inputs claimed and checked together, held for a shared batch (no part file), before the
    daemon starts: so a test can change one in state/inflight/ before anything reads it again."""
    settings = harness.settings
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        jobs = [claimed(settings, store, name, text) for name, text in files.items()]
        prepare_jobs(settings, store, jobs)
        for job in jobs:
            (part,) = store.parts(job.id)
            assert (part.state, part.path) == (PartState.WAITING, job.inflight_path), "held, no part file"
        return {job.source_name: store.job(job.id) for job in jobs}
    finally:
        store.close()


def append(job: Job, text: str) -> None:
    with open(job.inflight_path, "a") as fh:
        fh.write(text)


def uploaded(emulator: EmulatorServer) -> bytes:
    return b"".join(emulator.file_bytes(f["id"]) for f in emulator.files() if f["purpose"] == "batch")


def assert_failed_as_changed(harness: Harness, name: str) -> str:
    harness.wait_job(name, JobState.FAILED)
    report = report_path(harness.settings.failed / name).read_text()
    assert CHANGED in report and "size was" in report and "sha256 was" in report, report
    return report


def test_a_held_input_changed_before_it_is_packed_fails_alone_and_the_others_go_on(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(pack_wait=10)
    files = {**small_inputs("abcde", 2), **small_inputs("x", 2, model="gpt-4.1-mini")}
    jobs = held_and_waiting(harness, files)
    os.unlink(jobs["e.jsonl"].inflight_path)  # someone cleaned state/inflight/
    append(jobs["b.jsonl"], "[1,2]\n")  # a writer that still had the file open
    append(jobs["c.jsonl"], VALID_EXTRA)  # valid, but never checked
    append(jobs["x.jsonl"], VALID_EXTRA)  # waits alone: its own part file is written from the input
    harness.start()

    for name in ("a.jsonl", "d.jsonl"):
        harness.wait_job(name)
        assert [r["custom_id"] for r in harness.results(name)] == ["r0", "r1"]
    for name in ("b.jsonl", "c.jsonl", "x.jsonl"):
        assert "Nothing of this input was sent" in assert_failed_as_changed(harness, name)
    harness.wait_job("e.jsonl", JobState.FAILED)
    assert "it is gone from state/inflight/" in report_path(harness.settings.failed / "e.jsonl").read_text()
    assert b"sneaked-in" not in uploaded(emulator), "an unchecked line is never sent"
    (batch,) = emulator.batches()
    assert batch["request_counts"]["total"] == 4, "a and d still shared a batch"
    harness.drop("later.jsonl", small_inputs("l", 2)["l.jsonl"])
    harness.wait_job("later.jsonl")


@contextmanager
def slow_batches(tmp_path: Path, **changes: Any) -> Iterator[Harness]:
    """A daemon whose batches run for two seconds: time to change an input while its batch runs."""
    slow = EmulatorSettings(**{**FAST, "in_progress_seconds": 2.0}, data_dir=tmp_path / "emulator-data")  # type: ignore[arg-type]
    with EmulatorServer(slow) as server:
        root = tmp_path / "root"
        root.mkdir()
        harness = Harness(fast_settings(root, server.base_url, **changes), server)
        try:
            yield harness
        finally:
            harness.stop()


def test_a_held_input_changed_while_its_shared_batch_runs_keeps_its_results_and_fails(tmp_path: Path) -> None:
    with slow_batches(tmp_path, pack_wait=10) as harness:
        drop_before_start(harness, small_inputs("ab", 2))
        harness.start()
        job = wait_until(lambda: _in_state(harness, "b.jsonl", PartState.PACKED), what="b in a shared batch")
        assert harness.store is not None and harness.store.parts(job.id)[0].path == job.inflight_path, "held"
        append(job, VALID_EXTRA)
        harness.wait_job("a.jsonl")
        report = assert_failed_as_changed(harness, "b.jsonl")
        assert "in the order the service returned them" in report
        results = harness.results("b.jsonl")
        assert sorted(r["custom_id"] for r in results) == ["r0", "r1"], "the paid results are kept"
        assert [r["custom_id"] for r in harness.results("a.jsonl")] == ["r0", "r1"]


def test_a_large_input_that_grew_while_its_batch_ran_keeps_its_results_and_fails(tmp_path: Path) -> None:
    with slow_batches(tmp_path, pack_inputs_up_to=0) as harness:
        harness.start()
        harness.drop("big.jsonl", small_inputs("a", 3)["a.jsonl"])
        job = wait_until(lambda: _in_state(harness, "big.jsonl", PartState.SUBMITTED), what="big's batch")
        append(job, VALID_EXTRA)
        harness.wait_job("big.jsonl", JobState.FAILED)
        report = report_path(harness.settings.failed / "big.jsonl").read_text()
        assert CHANGED in report and "size was" in report and "in input order" in report, report
        assert [r["custom_id"] for r in harness.results("big.jsonl")] == ["r0", "r1", "r2"], "results kept"


def _in_state(harness: Harness, name: str, state: PartState) -> Job | None:
    job = harness.job(name)
    if job is None or harness.store is None:
        return None
    parts = harness.store.parts(job.id)
    return job if parts and parts[0].state == state else None
