"""``batchd abandon NAME [--cancel]``: end a job on purpose, keeping what was collected.

The command records the operator's request in the state, on the job (``abandon_requested_at``,
``abandon_after_cancel``; see state/job_endings.py), after cancelling the job's running batches if
asked to. Whoever owns the state then ends the job (results/abandonment.py): a running daemon at
its next pass, or, when no daemon runs on this root, the command itself while it holds the
daemon's lock. Every step that could send more reads it first, and the job ends as FAILED, so
neither a running daemon nor a restarted one takes it up again.

With --cancel the job ends once its cancelled batches have ended and what they finished has been
collected (a cancel the service refuses leaves that batch to the lost-batch grace, or to a second
``batchd abandon NAME`` without --cancel, which ends the job at once).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from daemon.config import Settings
from daemon.errors import AlreadyRunningError, DaemonError, PermanentError
from daemon.logs import get_logger
from daemon.results.abandonment import Abandonment
from daemon.results.collector import Collector
from daemon.service.batch_service import BatchService
from daemon.service.holds import Holds
from daemon.service.profile_services import ProfileServices, connect_jobs_profiles
from daemon.state import folders
from daemon.state.job_endings import abandon_note
from daemon.state.rows import Job
from daemon.state.states import INPUT_KIND, OPEN_JOB_STATES, TERMINAL_JOB_STATES, PartState
from daemon.state.store import Store

log = get_logger(__name__)
WAIT_STEP = 0.2


def abandon_job(settings: Settings, name: str, *, cancel: bool, wait: float) -> int:
    """The command: record the request (cancelling first if asked), then see the job ended."""
    store = Store(settings.state / folders.DB_NAME)
    try:
        jobs = [j for j in store.jobs(OPEN_JOB_STATES) if name in (j.source_name, j.id) and j.kind == INPUT_KIND]
        if not jobs:
            raise DaemonError(f"no open job for {name!r}; `batchd status` lists them")
        remote = connect_jobs_profiles(settings.providers, {j.profile for j in jobs}, settings.request_timeout)
        try:
            for job in jobs:
                request_abandon(store, remote.of(job.profile), job, cancel=cancel)
            _see_ended(settings, store, remote, jobs, wait)
        finally:
            remote.close()
    finally:
        store.close()
    return 0


def request_abandon(
    store: Store, remote: BatchService, job: Job, *, cancel: bool, say: Callable[[str], None] = print
) -> None:
    """Record the operator's request on the job (cancelling its batches first if asked); who owns the
    state then ends it. What happened goes to ``say`` line by line."""
    cancelled = cancel and _cancel_batches(store, remote, job, say)
    store.update_job(job.id, abandon_requested_at=time.time(), abandon_after_cancel=cancelled)
    log.info("job_abandon_requested", job_id=job.id, file=job.source_name, cancel=cancelled)
    say(f"{job.source_name}: {abandon_note(store.job(job.id))}")


def _cancel_batches(store: Store, remote: BatchService, job: Job, say: Callable[[str], None]) -> bool:
    """Cancel the job's own running batches; True if any cancel was accepted (the job then waits for it)."""
    accepted = False
    for part in store.parts(job.id):
        if part.state == PartState.PACKED:
            say(f"{job.source_name}: shares a batch with other inputs (pack {part.pack_id}); that batch runs on")
        if part.state != PartState.SUBMITTED or not part.batch_id:
            continue
        try:
            batch = remote.cancel(part.batch_id)
        except PermanentError as exc:
            say(f"{job.source_name}: the service refused to cancel batch {part.batch_id}: {exc}")
            continue
        accepted = True
        log.info("batch_cancel_requested", job_id=job.id, batch_id=part.batch_id, status=batch.status)
        say(f"{job.source_name}: batch {part.batch_id} is {batch.status}")
    return accepted


def _see_ended(settings: Settings, store: Store, remote: ProfileServices, jobs: list[Job], wait: float) -> None:
    lock = folders.InstanceLock(settings.state)
    try:
        lock.acquire()
    except AlreadyRunningError:
        _wait_for_daemon(store, jobs, wait)
        return
    try:  # no daemon runs on this root: end the jobs here, under its lock
        collector = Collector(settings, store, remote, Holds(store), threading.Event())
        abandonment = Abandonment(store, collector, lambda _key: False)
        for job in jobs:
            abandonment.end(job.id)
        _say_where(store, jobs, "when the daemon next runs and the cancelled batches have ended")
    finally:
        lock.release()


def _wait_for_daemon(store: Store, jobs: list[Job], wait: float) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not all(_ended(store, j) for j in jobs):
        pause.wait(WAIT_STEP)
    _say_where(store, jobs, "at the running daemon's next pass, once the cancelled batches have ended")


def _ended(store: Store, job: Job) -> bool:
    return store.job(job.id).state in TERMINAL_JOB_STATES


def _say_where(store: Store, jobs: list[Job], later: str) -> None:
    for job in jobs:
        now = store.job(job.id)
        if now.state in TERMINAL_JOB_STATES:
            print(f"{job.source_name}: ended; input in {now.final_path}, results in {now.result_dir}")
        else:
            print(f"{job.source_name}: recorded; it ends {later}")


def see_ended_by_daemon(settings: Settings, name: str, since: float, wait: float) -> None:
    """After the daemon recorded the abandon: wait up to ``wait`` seconds for the jobs to end and say
    where their files are, if this user may read the state (an operator in the group may not)."""
    db = settings.state / folders.DB_NAME
    if not os.access(db, os.R_OK):
        return
    store = Store(db, readonly=True)
    try:
        jobs = [
            j
            for j in store.jobs()
            if name in (j.source_name, j.id) and j.abandon_requested_at and j.abandon_requested_at >= since
        ]
        _wait_for_daemon(store, jobs, wait)
    finally:
        store.close()
