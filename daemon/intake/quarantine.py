"""Quarantine: one job whose step keeps failing the same way is set aside, so it cannot block others.

Steps are retried after a failure, which is right for a passing fault and wrong for a bug or an
input nothing can send: retried for ever, it fills the log, and in a step that serves every input
(packing) it holds up all of them. So every step runs its work for one job through ``guard``:
``quarantine_after`` failures in a row with the same error end that job in failed/ with a report
(log event ``job_quarantined``). A held input found changed since it was checked ends at once.

Only a job nothing of which was submitted is set aside: a job with a batch was paid for, and its
results must still be collected; its failing step goes on being retried (and logged) instead.
Faults of the machine (a full disk, an unwritable folder, the state database) and of the service
are not the job's: they are left to the callers' own retries, never counted.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.errors import AccountError, PermanentError, TransientError
from daemon.intake.recheck import InputChangedError
from daemon.intake.reports import write_report
from daemon.logs import get_logger
from daemon.state.archive import move_input
from daemon.state.fileops import free_name, safe_component
from daemon.state.folders import PARTS
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, TERMINAL_JOB_STATES, JobState, PartState
from daemon.state.store import Store
from daemon.workers import MAX_COOLDOWN

log = get_logger(__name__)
T = TypeVar("T")
# Before any batch exists: nothing paid for is lost by ending the job here.
BEFORE_SUBMISSION = frozenset({PartState.WAITING, PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED})
_MACHINE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EMFILE, errno.ENFILE}
)
_NOT_THE_JOBS = (TransientError, AccountError, PermanentError, sqlite3.Error)


class Quarantine:
    """Counts each job's failures in a row and sets a job aside when they reach the limit."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = WALL_CLOCK) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._failures: dict[str, tuple[str, int]] = {}  # job id -> (error, failures in a row)
        self._cooling: dict[str, float] = {}  # job id -> time (by the clock) before which it is not tried again
        self._lock = threading.Lock()

    def cooling(self, job_id: str) -> bool:
        """Whether a contained failure of this job was so recent that it should wait: a step that
        serves many jobs (packing, checking) runs again at once for the others, not for this one."""
        with self._lock:
            return self.clock.now() < self._cooling.get(job_id, 0.0)

    def next_ready(self) -> float | None:
        """When the next job's cooldown ends, by the clock; None if none is cooling."""
        now = self.clock.now()
        with self._lock:
            return min((until for until in self._cooling.values() if until > now), default=None)

    def guard(self, job_id: str, step: str, work: Callable[[], T], *, contain: bool = False) -> T | None:
        """Run ``work`` for ``job_id``. A failure is counted and raised again (the caller's retry
        paces it), or with ``contain`` logged and swallowed (None) so one job cannot stop a step
        that serves others. A set-aside job's failure is swallowed either way."""
        try:
            result = work()
        except InputChangedError as exc:
            self.end_changed(self.store.job(job_id), exc)
            return None
        except Exception as exc:
            if _not_the_jobs(exc):
                raise
            if not self._counted(job_id, step, exc):
                return None  # set aside (or ended meanwhile): nothing to retry
            if not contain:
                raise
            log.exception("step_failed", job_id=job_id, step=step, error=_describe(exc), retry_in=self._cool(job_id))
            return None
        with self._lock:
            self._failures.pop(job_id, None)
            self._cooling.pop(job_id, None)
        return result

    def _cool(self, job_id: str) -> float:
        """Hold the job back like workers.Workers holds a failed step: 1 s, doubling up to a minute."""
        with self._lock:
            wait = min(MAX_COOLDOWN, 2.0 ** (self._failures.get(job_id, ("", 1))[1] - 1))
            self._cooling[job_id] = self.clock.now() + wait
        return wait

    def _counted(self, job_id: str, step: str, exc: Exception) -> bool:
        """Count the failure; True if the job goes on (it was not set aside now)."""
        error = _describe(exc)
        with self._lock:
            last, count = self._failures.get(job_id, ("", 0))
            count = count + 1 if last == error else 1
            self._failures[job_id] = (error, count)
        if count < self.settings.quarantine_after:
            return True
        job, parts = self.store.job(job_id), self.store.parts(job_id)
        if job.state in TERMINAL_JOB_STATES:
            return False
        if not _before_submission(parts):
            if count == self.settings.quarantine_after:  # once: it keeps being retried with a pause
                batch_ids = _batches(parts)
                log.error("step_failing", job_id=job_id, step=step, error=error, failures=count, batch_ids=batch_ids)
            return True
        self._set_aside(job, parts, step, error, count)
        with self._lock:
            self._failures.pop(job_id, None)
        return False

    def _set_aside(self, job: Job, parts: list[Part], step: str, error: str, count: int) -> None:
        reason = f"the {step} step failed {count} times in a row with the same error, so batchd set it aside"
        lines = [f"error: {error}", *_remote_lines(parts)]
        if job.kind == PACK_KIND:
            self._release_members(job, reason)
            report = None
        else:
            report = end_job(self.settings, self.store, job, reason, lines)
        log.error("job_quarantined", job_id=job.id, step=step, error=error, failures=count, report=str(report))

    def _release_members(self, pack: Job, reason: str) -> None:
        """A pack set aside: nothing of it was sent, so each member goes alone, never packed again."""
        from daemon.intake.packer import own_part_file  # noqa: PLC0415 - the packer runs its steps through this module

        for member in self.store.pack_members(pack.id):
            if member.state != PartState.PACKED:  # it ended while packed (abandoned): it stays ended
                continue
            job = self.store.job(member.job_id)
            try:
                path = own_part_file(self.settings, job, member)
            except InputChangedError as exc:
                self.end_changed(job, exc)
                continue
            self.store.unpack_part(member.id, path)
        self.store.update_job(pack.id, state=JobState.FAILED, note=reason, finished_at=time.time())
        shutil.rmtree(pack.result_dir or "", ignore_errors=True)

    def end_changed(self, job: Job, exc: InputChangedError) -> None:
        """A held input that changed since it was checked ends alone in failed/, nothing of it sent."""
        lines = [
            f"Changed: {exc.detail}.",
            "Nothing of this input was sent: batchd sends only the bytes it checked. If a writer still",
            "had the file open when it was handed over, finish writing a file before it is dropped in",
            "(or write it elsewhere and move it in), then drop it in again.",
        ]
        report = end_job(self.settings, self.store, job, str(exc), lines)
        log.error("input_changed", job_id=job.id, file=job.source_name, detail=exc.detail, report=str(report))


def end_job(settings: Settings, store: Store, job: Job, reason: str, lines: list[str]) -> Path:
    """End a job nothing of which was submitted: input to failed/ with a report, job FAILED."""
    dest = failed_place(settings, store, job)
    report = write_report(dest, job.source_name, job.id, reason, lines, sharing=settings.sharing(), root=settings.root)
    with store.transaction():
        for part in store.parts(job.id):
            if part.state == PartState.SUPERSEDED:  # its requests went into a newer part: not ended here
                continue
            store.update_part(part.id, state=PartState.DOWNLOADED, pack_id=None, pack_slot=None, last_error=reason)
        store.update_job(job.id, state=JobState.FAILED, note=reason, finished_at=time.time())
    shutil.rmtree(settings.state / PARTS / job.id, ignore_errors=True)
    return report


def failed_place(settings: Settings, store: Store, job: Job) -> Path:
    """Move the input to failed/ and return where; if it is gone (someone cleaned state/inflight/),
    the name its report goes beside."""
    moved = job.final_path and os.path.lexists(job.final_path)
    if moved or os.path.lexists(job.inflight_path):
        return move_input(store, job, settings.failed)
    return free_name(settings.failed, safe_component(job.source_name), job.id)


def _not_the_jobs(exc: Exception) -> bool:
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        return True
    return isinstance(exc, _NOT_THE_JOBS)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _before_submission(parts: list[Part]) -> bool:
    return all(p.state in BEFORE_SUBMISSION and not p.batch_id and not p.old_batch_ids for p in parts)


def _batches(parts: list[Part]) -> list[str]:
    return [b for p in parts for b in [*filter(None, p.old_batch_ids.split(",")), p.batch_id] if b]


def _remote_lines(parts: list[Part]) -> list[str]:
    """What of the job is on the service: uploaded input files only (no batch was created); kept."""
    files = [p.file_id for p in parts if p.file_id]
    if not files:
        return ["Nothing of this input was sent to the service."]
    return [f"No batch was created. Uploaded input file(s) {', '.join(files)} are left on the service."]
