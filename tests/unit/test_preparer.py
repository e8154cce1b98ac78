"""Preparing claimed inputs: which small inputs wait without a part file, and which get one."""

from __future__ import annotations

import os
import time
from pathlib import Path

from daemon.config import Settings
from daemon.intake.preparer import prepare_jobs
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import request_file


def claimed(settings: Settings, store: Store, name: str, text: str) -> Job:
    """An input as a claim leaves it: in state/inflight/, recorded as CLAIMED."""
    now = time.time()
    inflight = settings.state / folders.INFLIGHT / f"job-{name}.jsonl"
    inflight.write_text(text)
    job = Job(f"job-{name}", name, str(settings.pending / name), str(inflight), JobState.CLAIMED, now, now)
    store.add_job(job)
    return job


def only_part(store: Store, job: Job) -> Part:
    (part,) = store.parts(job.id)
    return part


def test_small_inputs_with_company_wait_without_a_part_file(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    jobs = [claimed(settings, store, f"{n}.jsonl", request_file(3)) for n in "ab"]
    prepare_jobs(settings, store, jobs)
    for job in jobs:
        part = only_part(store, job)
        assert (part.state, part.path) == (PartState.WAITING, job.inflight_path), "the pack reads the input"
    assert not any((settings.state / folders.PARTS).iterdir())


def test_a_small_input_alone_goes_at_once_with_its_part_file(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "a.jsonl", request_file(3).replace("\n", "\r\n"))
    prepare_jobs(settings, store, [job])
    part = only_part(store, job)
    assert part.state == PartState.READY
    assert Path(part.path).read_text() == request_file(3), "normalised: what was checked is what is sent"


def test_an_input_with_another_name_is_copied_not_held(prepared: tuple[Settings, Store], tmp_path: Path) -> None:
    settings, store = prepared
    kept, linked = claimed(settings, store, "a.jsonl", request_file(3)), claimed(settings, store, "b.jsonl", "")
    os.unlink(linked.inflight_path)
    os.link(kept.inflight_path, tmp_path / "users-own-copy.jsonl")  # the user kept a name for a's file
    (tmp_path / "b-source.jsonl").write_text(request_file(2))
    os.link(tmp_path / "b-source.jsonl", linked.inflight_path)
    prepare_jobs(settings, store, [kept, linked])
    for job in (kept, linked):
        part = only_part(store, job)
        assert part.state == PartState.WAITING
        assert part.path != job.inflight_path, "a file someone else can still change is copied when checked"
        assert Path(part.path).read_bytes() == Path(job.inflight_path).read_bytes()


def test_a_job_that_ended_while_it_was_checked_is_not_revived(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    gone, kept = (claimed(settings, store, f"{n}.jsonl", request_file(3)) for n in "ab")
    store.update_job(gone.id, state=JobState.FAILED)  # e.g. quarantined by another step meanwhile
    prepare_jobs(settings, store, [gone, kept])  # both were read as CLAIMED before the change
    assert store.job(gone.id).state == JobState.FAILED and store.parts(gone.id) == []
    assert store.job(kept.id).state == JobState.ACTIVE, "the rest of the chunk still lands"
