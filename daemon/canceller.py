"""``batchd cancel NAME``: cancel a job's batches; the running daemon collects what finished."""

from __future__ import annotations

from daemon import folders
from daemon.config import CANCEL_NOTE, Settings
from daemon.credentials import find_key_source
from daemon.display import printable
from daemon.errors import DaemonError
from daemon.logs import get_logger
from daemon.remote import Remote, build_client
from daemon.states import OPEN_JOB_STATES, PartState
from daemon.store import Job, Store

log = get_logger(__name__)


def cancel_job(settings: Settings, name: str) -> int:
    store = Store(settings.state / folders.DB_NAME)
    try:
        jobs = [j for j in store.jobs(OPEN_JOB_STATES) if name in (j.source_name, j.id)]
        if not jobs:
            raise DaemonError(f"no open job for {name!r}; `batchd status` lists them")
        remote = Remote(build_client(find_key_source(), settings.base_url, settings.request_timeout))
        try:
            for job in jobs:
                cancel_one(store, remote, job)
        finally:
            remote.close()
    finally:
        store.close()
    return 0


def cancel_one(store: Store, remote: Remote, job: Job) -> None:
    parts = store.parts(job.id)
    packs = {p.pack_id for p in parts if p.state == PartState.PACKED and p.pack_id}
    if packs:
        # Its requests share a batch with other inputs: cancelling that batch would cancel theirs too.
        ids = ", ".join(sorted(packs))
        print(f"{printable(job.source_name)}: shares a batch with other inputs (pack {ids}); cancel the pack by its id")
        return
    # The note stops the daemon from resubmitting what the cancel left unfinished.
    store.update_job(job.id, note=CANCEL_NOTE)
    for part in parts:
        if part.state == PartState.SUBMITTED and part.batch_id:
            batch = remote.cancel(part.batch_id)
            log.info("batch_cancel_requested", job_id=job.id, batch_id=part.batch_id, status=batch.status)
            print(f"{printable(job.source_name)}: batch {part.batch_id} is {batch.status}")
