"""``batchd cancel NAME``: cancel a job's batches; the running daemon collects what finished.

The job is marked ``cancel_requested`` only once the service accepted a cancel (or when it has no
batch yet to cancel): a cancel the service refuses (404, 400 ...) leaves the job as it was.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.config import Settings
from daemon.display import printable
from daemon.errors import DaemonError, PermanentError, TransientError
from daemon.logs import get_logger
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import connect_jobs_profiles
from daemon.state import folders
from daemon.state.rows import Job
from daemon.state.states import OPEN_JOB_STATES, PartState
from daemon.state.store import Store

log = get_logger(__name__)


def cancel_job(settings: Settings, name: str) -> int:
    store = Store(settings.state / folders.DB_NAME)
    try:
        jobs = [j for j in store.jobs(OPEN_JOB_STATES) if name in (j.source_name, j.id)]
        if not jobs:
            raise DaemonError(f"no open job for {name!r}; `batchd status` lists them")
        remote = connect_jobs_profiles(settings.providers, {j.profile for j in jobs}, settings.request_timeout)
        try:
            refused = [job for job in jobs if not cancel_one(store, remote.of(job.profile), job)]
        finally:
            remote.close()
    finally:
        store.close()
    return 1 if refused else 0


def cancel_one(store: Store, remote: BatchService, job: Job, say: Callable[[str], None] = print) -> bool:
    """Cancel ``job``'s batches; False if the service refused and nothing was recorded. What happened
    goes to ``say`` line by line (the terminal, or a command's outcome when the daemon carries it out)."""
    parts = store.parts(job.id)
    packs = {p.pack_id for p in parts if p.state == PartState.PACKED and p.pack_id}
    if packs:
        # Its requests share a batch with other inputs: cancelling that batch would cancel theirs too.
        ids = ", ".join(sorted(packs))
        say(f"{printable(job.source_name)}: shares a batch with other inputs (pack {ids}); cancel the pack by its id")
        return True
    running = [p for p in parts if p.state == PartState.SUBMITTED and p.batch_id]
    accepted = not running and _record(store, job)  # nothing sent yet: the flag alone stops it
    for part in running:
        assert part.batch_id is not None
        try:
            batch = remote.cancel(part.batch_id)
        except PermanentError as exc:
            log.warning("batch_cancel_refused", job_id=job.id, batch_id=part.batch_id, error=str(exc))
            say(f"{printable(job.source_name)}: the service refused to cancel batch {part.batch_id}: {exc}")
            continue
        except TransientError:
            _record(store, job)  # no answer: the cancel may have gone through, so resubmit nothing
            raise
        # The flag stops the daemon from resubmitting what the cancel left unfinished.
        accepted = accepted or _record(store, job)
        log.info("batch_cancel_requested", job_id=job.id, batch_id=part.batch_id, status=batch.status)
        say(f"{printable(job.source_name)}: batch {part.batch_id} is {batch.status}")
    if not accepted:
        say(f"{printable(job.source_name)}: not cancelled; the job goes on as before (`batchd abandon` ends it)")
    return accepted


def _record(store: Store, job: Job) -> bool:
    store.update_job(job.id, cancel_requested=True)
    return True
