"""Turn a claimed input into parts ready to upload, or reject it with a report in failed/."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from daemon.config import Settings
from daemon.intake.conversion import ConversionError, convert_input, finish_conversion, plan_for
from daemon.intake.creation_budget import CreationBudget
from daemon.intake.drop_names import request_stem
from daemon.intake.line_formats import line_format_of
from daemon.intake.packer import has_company, packable
from daemon.intake.partial_inputs import SPLIT_OUT, Separation, split_out, write_note
from daemon.intake.quarantine import Quarantine
from daemon.intake.reports import validation_lines, write_report
from daemon.intake.splitter import Split, split_lines, write_part
from daemon.intake.validation import BatchLimits, Findings, HashingReader
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.state.archive import move_input
from daemon.state.fileops import safe_component
from daemon.state.folders import PARTS
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartOrigin, PartState
from daemon.state.store import Store

log = get_logger(__name__)


def batch_limits(settings: Settings, profile: str = DEFAULT_PROFILE) -> BatchLimits:
    """The limits an input of ``profile`` is split by: the smaller of the top-level setting and the
    profile's own (an Azure or compatible service may take less than OpenAI); the line forms its
    service takes."""
    chosen = settings.profile(profile)
    return BatchLimits(
        min(settings.max_requests_per_batch, chosen.max_requests_per_batch),
        min(settings.max_bytes_per_batch, chosen.max_bytes_per_batch),
        settings.max_embedding_inputs_per_batch,
        settings.max_tokens_per_batch,
        min(settings.max_line_bytes, chosen.max_bytes_per_batch),
        chosen.url_forms(),
        line_format_of(chosen),
        settings.splits_by_model(profile),
    )


@dataclass(frozen=True, slots=True)
class Checked:
    """A job whose input passed, split into part files, not yet recorded."""

    job: Job
    split: Split
    sha256: str
    size: int
    separation: Separation | None = None  # lines split out of it (partial_inputs = split_out)


def prepare_jobs(settings: Settings, store: Store, jobs: list[Job], quarantine: Quarantine | None = None) -> None:
    """Validate and split CLAIMED jobs into parts, or reject them; record those that passed in one
    transaction (a burst of small files would otherwise pay one durable commit each). A check that
    fails on one job is counted against it (quarantine), not against the others of the chunk."""
    guard = quarantine or Quarantine(settings, store)
    found = (guard.guard(job.id, "check", partial(_check, settings, store, job), contain=True) for job in jobs)
    checked = [c for c in found if c is not None]
    if not checked:
        return
    # Once per chunk (per profile in it). With its profile's creation budget filling, an input alone
    # in the queue waits for company too (see creation_budget).
    company = has_company(settings, store)
    budget, now = CreationBudget(settings, store), time.time()
    tight = {profile: budget.tight(now, profile) for profile in {item.job.profile for item in checked}}
    placed = [_place(settings, item, company or tight[item.job.profile]) for item in checked]
    with store.transaction():  # each job's parts and its new state land together, or none do
        for item, place in zip(checked, placed, strict=True):
            _record(settings, store, item, place)
    _note_separations(store, checked)
    for item in checked:
        findings = item.split.findings
        log.info(
            "file_validated",
            file=item.job.source_name,
            job_id=item.job.id,
            requests=findings.requests,
            parts=len(item.split.parts),
            endpoint=findings.endpoint,
            model=findings.model,
            models=list(findings.models),
        )


def _note_separations(store: Store, checked: list[Checked]) -> None:
    for item in checked:
        if item.separation is not None:
            job = store.job(item.job.id)
            write_note(Path(job.result_dir or ""), job.source_name, item.separation)


def _check(settings: Settings, store: Store, job: Job) -> Checked | None:
    """Split the input into part files, or reject it (its own commits, before anything else)."""
    path = Path(job.inflight_path)
    problem = _unusable(path) or _converted(settings, store, job)
    if problem:
        reject(settings, store, job, problem, [])
        return None
    checked = _split(settings, store, job)
    if checked is None or checked.split.findings.ok:
        return checked
    if settings.partial_inputs == SPLIT_OUT:
        separation = split_out(settings, store, job, batch_limits(settings, job.profile))
        if separation is not None:  # the good lines alone are the input now: checked again, they pass
            checked = _split(settings, store, job)
            if checked is None or checked.split.findings.ok:
                return None if checked is None else dataclasses.replace(checked, separation=separation)
    reason = f"{checked.split.findings.problem_count} problem(s) found before anything was uploaded"
    reject(settings, store, job, reason, [], checked.split.findings)
    return None


def _split(settings: Settings, store: Store, job: Job) -> Checked | None:
    """The job's input checked and split (maybe with problems); None if it could not be read (rejected)."""
    path = Path(job.inflight_path)  # the converted input, if it was
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; only a failure to open means a bad input
    except OSError as exc:
        reject(settings, store, job, f"it cannot be read ({exc.strerror}); give batchd's user read permission", [])
        return None
    with fh:
        reader = HashingReader(fh)  # checked and fingerprinted in one read
        split = split_lines(
            reader, settings.state / PARTS / job.id, batch_limits(settings, job.profile), _hold(settings, fh)
        )
    return Checked(job, split, reader.hexdigest(), reader.size)


def _converted(settings: Settings, store: Store, job: Job) -> str | None:
    """Decompress or wrap the input if it needs it (see conversion); why it cannot be, or None."""
    finish_conversion(settings, job)
    plan = plan_for(settings, job)
    if not plan.needed:
        return None
    try:
        convert_input(settings, store, job, plan)
    except ConversionError as exc:
        return str(exc)
    return None


def _hold(settings: Settings, fh: IO[bytes]) -> int:
    """How many requests of this input may be held in memory rather than copied to a part file
    (split_lines). A held input is read again later, so only one nobody else can still reach: an
    input with another name (a hard link the user kept) could change after it was checked."""
    return settings.pack_inputs_up_to if os.fstat(fh.fileno()).st_nlink == 1 else 0


@dataclass(frozen=True, slots=True)
class Place:
    """Where a checked input's parts start: their state, their origin and their files."""

    state: PartState
    origin: PartOrigin
    paths: list[str]


def _place(settings: Settings, item: Checked, company: bool) -> Place:
    """The parts' first state and files. A small input with company waits to share a batch (see
    packer); one held in memory then needs no part file: the pack is written from the input."""
    split = item.split
    waits = company and packable(settings, len(split.parts), split.findings.requests)
    if waits and split.held is not None:
        return Place(PartState.WAITING, PartOrigin.HELD_INPUT, [item.job.inflight_path])
    if split.held is not None:
        write_part(split.held, split.parts[0].path)
    state = PartState.WAITING if waits else PartState.READY
    return Place(state, PartOrigin.OWN_FILE, [str(pf.path) for pf in split.parts])


def _record(settings: Settings, store: Store, item: Checked, place: Place) -> None:
    job, findings, now = item.job, item.split.findings, time.time()
    current = store.job(job.id).state
    if current != JobState.CLAIMED:  # ended meanwhile (quarantined, abandoned): no longer this step's
        log.info("preparation_dropped", job_id=job.id, state=str(current))
        return
    mixed = len(findings.models) > 1  # split by model: each part names its own, the job none
    for n, (pf, path) in enumerate(zip(item.split.parts, place.paths, strict=True)):
        part = Part(job.id, n, 0, path, pf.first_line, pf.request_count, pf.byte_size, pf.est_tokens, place.state,
                    now, now, origin=place.origin, model=pf.model if mixed else None)  # fmt: skip
        store.add_part(part)
    store.update_job(
        job.id,
        state=JobState.ACTIVE,
        sha256=item.sha256,
        size=item.size,
        endpoint=findings.endpoint,
        model=None if mixed else findings.model,
        request_count=findings.requests,
        result_dir=str(result_dir_for(settings, store, job.source_name, job.id)),
    )


def _unusable(path: Path) -> str | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "the file disappeared after it was claimed"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link; batchd does not follow links, copy the file in instead"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file (a directory or device); drop JSONL files only"
    return None


def result_dir_for(settings: Settings, store: Store, source_name: str, job_id: str) -> Path:
    """batch_results/<name>/, or a job-tagged name so a later input never overwrites earlier results."""
    stem = safe_component(request_stem(source_name))
    candidate = settings.results / stem
    if candidate.exists() or store.result_dir_taken(str(candidate), job_id):
        candidate = settings.results / f"{stem}.{job_id}"
    return candidate


def reject(
    settings: Settings, store: Store, job: Job, reason: str, lines: list[str], findings: Findings | None = None
) -> None:
    """Move the input to failed/ with a report (``findings`` listed in it); the job ends as REJECTED."""
    dest = move_input(store, job, settings.failed)
    shutil.rmtree(settings.state / PARTS / job.id, ignore_errors=True)
    if findings is not None:  # the fixes it suggests name the input where it now is
        lines = [*lines, *validation_lines(findings, f"{settings.failed_dir}/{dest.name}")]
    report = write_report(dest, job.source_name, job.id, reason, lines, sharing=settings.sharing(), root=settings.root)
    store.update_job(job.id, state=JobState.REJECTED, note=reason, finished_at=time.time())
    log.warning("file_rejected", file=job.source_name, job_id=job.id, reason=reason, report=str(report))
