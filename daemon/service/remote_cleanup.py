"""Remote hygiene: delete a job's files from the service once its results are written.

The files to delete (each part's uploaded input, each batch's output and error file) are recorded
in the state after results.jsonl and summary.json are durable and before the input is archived,
and they become due only once the job has ended. So a crash anywhere leaves them recorded, and
nothing is deleted that a result still needs. A deletion that fails is retried later with backoff
and given up after ``MAX_TRIES`` (the batch's ``output_expires_after`` removes outputs anyway); it
never holds up or fails the job. A 404 means the file is already gone: a deletion whose answer was
lost and is sent again does no harm.
"""

from __future__ import annotations

import threading
import time

from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.errors import AccountError, PermanentError, TransientError
from daemon.logs import get_logger
from daemon.service.batch_info import part_batch
from daemon.service.batch_service import BatchService
from daemon.service.file_room import FileRoom
from daemon.service.holds import Holds
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.service.retrying import scheduled_delay
from daemon.state.rows import Job, Part, RemoteFile
from daemon.state.store import Store

log = get_logger(__name__)
# Scheduled delays double from 1 s up to 5 min: 20 tries span about an hour.
MAX_TRIES = 20
PER_PASS = 50  # deletions per worker task, so one task never holds a worker for long
PENDING, DELETED, ABANDONED = "pending", "deleted", "abandoned"


def schedule_deletions(settings: Settings, store: Store, job: Job, parts: list[Part]) -> None:
    """Record the job's remote files for deletion (idempotent); call once its results are durable."""
    if not settings.delete_remote_files:
        return
    files = remote_files_of(parts)
    if files:
        store.add_remote_files(job.id, files, time.time())


def remote_files_of(parts: list[Part]) -> list[tuple[str, str]]:
    """(file id, role) for every file the job's parts put on or got from the service."""
    found: dict[str, str] = {}
    for part in parts:
        if part.pack_id:
            continue  # its batch is its pack's: the pack records those files for deletion
        if part.file_id:
            found.setdefault(part.file_id, "input")
        batch = part_batch(part)
        if batch is not None:
            for file_id, role in ((batch.output_file_id, "output"), (batch.error_file_id, "errors")):
                if file_id:
                    found.setdefault(file_id, role)
    return sorted(found.items())


class Hygiene:
    def __init__(
        self,
        store: Store,
        remote: BatchService | ProfileServices,
        holds: Holds,
        stop: threading.Event,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.store = store
        self.clock = clock  # deletions are due, and retried, by it
        self.services = profile_services(remote)
        self.holds = holds
        self.stop = stop
        self.file_room = FileRoom(store)

    def due(self, now: float) -> bool:
        return bool(self.store.due_remote_files(now, limit=1))

    def run_due(self) -> None:
        """Delete the files that are due now (at most PER_PASS), on a worker."""
        now = self.clock.now()
        for item in self.store.due_remote_files(now, limit=PER_PASS):
            if self.stop.is_set():
                return
            profile = self.store.job(item.job_id).profile  # the file is on the service of its job's profile
            wait = self.holds.account_wait(self.clock.now(), profile)
            if wait > 0:  # the account is blocked: do not add to the noise, try after the hold
                self.store.update_remote_file(item.file_id, next_action_at=self.clock.now() + wait)
                continue
            self._delete(item, profile)

    def _delete(self, item: RemoteFile, profile: str) -> None:
        try:
            existed = self.services.of(profile).delete_file(item.file_id)
        except (TransientError, AccountError) as exc:
            if isinstance(exc, AccountError):
                self.holds.block_account(str(exc), profile)
            self._retry_later(item, str(exc), getattr(exc, "retry_after", None))
        except PermanentError as exc:
            self._give_up(item, str(exc))
        else:
            self.store.update_remote_file(item.file_id, state=DELETED, last_error=None)
            if item.role == "input":  # an upload waiting for room under max_files may go now
                self.file_room.free(profile, self.clock.now())
            log.info(
                "remote_file_deleted",
                job_id=item.job_id,
                file_id=item.file_id,
                role=item.role,
                already_gone=not existed,
            )

    def _retry_later(self, item: RemoteFile, error: str, retry_after: float | None) -> None:
        tries = item.tries + 1
        if tries >= MAX_TRIES:
            self._give_up(item, error)
            return
        delay = scheduled_delay(item.tries, retry_after)
        self.store.update_remote_file(
            item.file_id, tries=tries, last_error=error, next_action_at=self.clock.now() + delay
        )
        log.warning(
            "remote_file_delete_retry_scheduled",
            job_id=item.job_id,
            file_id=item.file_id,
            error=error,
            retry_in=round(delay, 1),
        )

    def _give_up(self, item: RemoteFile, error: str) -> None:
        self.store.update_remote_file(item.file_id, state=ABANDONED, last_error=error)
        log.warning(
            "remote_file_abandoned",
            job_id=item.job_id,
            file_id=item.file_id,
            role=item.role,
            error=error,
            hint="the service removes it when it expires; delete it by hand to free storage sooner",
        )
