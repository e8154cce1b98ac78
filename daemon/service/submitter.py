"""Submission: upload a part and create its batch, never twice.

Each POST is bracketed in the state: the intent (with its time) is written before the call, the
result after it. A part found at an intent (after a crash, or an ambiguous failure) is reconciled
first: the remote files and batches are searched for this part's name and metadata, and a match is
adopted instead of creating another. Only then is the call made again.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from pathlib import Path

from daemon import crashpoints
from daemon.config import Settings
from daemon.errors import AccountError, FileLimitError, PermanentError, TokenLimitError, TransientError
from daemon.intake.creation_budget import CreationBudget
from daemon.intake.model_names import rename_part
from daemon.intake.refitter import Verdict
from daemon.logs import get_logger
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_search import UNCONFIRMED_HOLD, our_batches, unconfirmed_reason
from daemon.service.candidate_batches import own_batch
from daemon.service.part_steps import PartSteps
from daemon.service.retrying import scheduled_delay
from daemon.state.fileops import fingerprint
from daemon.state.folders import PARTS
from daemon.state.job_endings import cancel_stands
from daemon.state.rows import Job, Part, part_model
from daemon.state.states import TERMINAL_JOB_STATES, PartOutcome, PartState

log = get_logger(__name__)
ABANDONED_PART_HOLD = 3600.0  # the abandonment ends such a part within a pass or two; this only keeps it off the queue
_BEFORE_INTENT = {PartState.UPLOAD_INTENT: PartState.READY, PartState.BATCH_INTENT: PartState.UPLOADED}
_REFITTABLE = (PartState.READY, PartState.UPLOADED)  # no batch exists for them (an intent may have one)


def batch_metadata(settings: Settings, job: Job, part: Part) -> dict[str, str]:
    """The pairs that let a lost batch be found again, plus the user's own."""
    ours = {
        "batchd_job": job.id,
        "batchd_part": part.label,
        "batchd_source": job.source_name[:512],
        "batchd_sha256": job.sha256 or "",
        # What was uploaded: `batchd recover` checks a part file (or the upload) against it.
        "batchd_part_sha256": file_sha256(Path(part.path)),
    }
    return {**settings.metadata, **ours}


def file_sha256(path: Path) -> str:
    """The file's SHA-256, or "" if it cannot be read (the metadata then just lacks it)."""
    try:
        return fingerprint(path)[0]
    except OSError:
        return ""


class Submitter(PartSteps):
    def advance(self, part_id: int) -> None:
        """Take one part as far as it can go now (up to SUBMITTED); schedule it again on failure."""
        part = self.store.part(part_id)
        job = self.store.job(part.job_id)
        try:
            self.retried(part_id, job, self._run, "submit")
        except TokenLimitError as exc:
            self._hold_model(self.store.part(part_id), job, exc)
            self._reschedule(part_id, exc)
        except FileLimitError as exc:
            self._wait_for_room(part_id, job, exc)
        except TransientError as exc:
            self._reschedule(part_id, exc)
        except AccountError as exc:
            self.holds.block_account(str(exc), job.profile)
            self._revert_intent(part_id, str(exc), delay=self.holds.account_wait(self.clock.now(), job.profile))
        except PermanentError as exc:
            self._give_up(part_id, job, str(exc))
        else:
            self.holds.clear_account(job.profile)

    def _run(self, part: Part, job: Job) -> None:
        if cancel_stands(job) and part.state in (PartState.READY, PartState.UPLOADED):
            self.store.update_part(part.id, state=PartState.FINISHED, outcome=PartOutcome.CANCELLED, next_action_at=0)
            return
        if part.state in _REFITTABLE and self._refitted(part, job):
            return
        while not self.stop.is_set() and part.state != PartState.SUBMITTED and self._open(job):
            if job.abandoned:  # the abandonment ends the part; offer it to no step meanwhile
                self.store.update_part(part.id, next_action_at=self.clock.now() + ABANDONED_PART_HOLD)
                return
            with self._turn(part, job):
                wait = self._hold(part, job)
                if wait > 0:
                    self.store.update_part(part.id, next_action_at=self.clock.now() + wait)
                    return
                self._step(part, job)
            part, job = self.store.part(part.id), self.store.job(job.id)

    def _open(self, job: Job) -> bool:
        """Whether the job still wants its part submitted: another step may have set it aside."""
        return self.store.job(job.id).state not in TERMINAL_JOB_STATES

    def _turn(self, part: Part, job: Job) -> AbstractContextManager[object]:
        """A batch about to be created waits its model's turn (see Holds.model_turn), once the model
        has a known limit to weigh it against: without one, creates of a burst stay in parallel. The
        model is the part's own: an input split by model waits in each model's queue separately."""
        model = part_model(part, job)
        weighed = part.state in (PartState.UPLOADED, PartState.BATCH_INTENT) and model
        if weighed and self.holds.token_limit(model or "", job.profile) is not None:
            return self.holds.model_turn(model or "", job.profile)
        return contextlib.nullcontext()

    def _refitted(self, part: Part, job: Job) -> bool:
        """A part the model's learned token limit cannot take is split to fit before it is sent."""
        model = part_model(part, job)
        limit = self.holds.token_limit(model, job.profile) if model else None
        return limit is not None and self.refitter.refit(part, job, limit, reported=False) is not Verdict.FITS

    def _hold(self, part: Part, job: Job) -> float:
        now = self.clock.now()
        wait = self.holds.account_wait(now, job.profile)
        model = part_model(part, job)  # each model's batches wait for that model's queue alone
        if wait == 0 and part.state in (PartState.UPLOADED, PartState.BATCH_INTENT) and model:
            enqueued = self.store.enqueued_tokens(model, job.profile)
            wait = self.holds.model_wait(model, part.est_tokens, enqueued, now, job.profile)
        if wait == 0 and part.state == PartState.READY:
            wait = self.file_room.wait(part, self.service(job).profile)
        if wait == 0 and part.state == PartState.UPLOADED:
            wait = self._budget_wait(part, job, now)
        if wait == 0 and part.state == PartState.BATCH_INTENT and not self.service(job).profile.supports_list:
            wait = self._unconfirmed_wait(part, job)
        return wait

    def _unconfirmed_wait(self, part: Part, job: Job) -> float:
        """A create whose reply was lost, on a service that cannot list batches: whether it made a
        batch cannot be told, so none is created again (that could be paid twice); the part waits."""
        reason = unconfirmed_reason(self.service(job).profile.name, part)
        self.store.update_part(part.id, last_error=reason)
        log.error("batch_creation_unconfirmed", job_id=job.id, part=part.label, file_id=part.file_id, error=reason)
        return UNCONFIRMED_HOLD

    def _budget_wait(self, part: Part, job: Job, now: float) -> float:
        """With the hourly creation budget of the job's profile spent, the create waits until the
        oldest one leaves the window: that service would answer it with a 429 until then (see
        creation_budget). Another profile's creates are another service's."""
        wait = CreationBudget(self.settings, self.store).create_wait(now, job.profile)
        if wait > 0:
            log.info(
                "batch_creation_held",
                job_id=part.job_id,
                part=part.label,
                profile=job.profile,
                retry_in=round(wait, 1),
                budget=self.settings.creation_budget,
            )
        return wait

    def _step(self, part: Part, job: Job) -> None:
        assert part.id is not None
        if part.state == PartState.READY:
            self._rename_models(part, job)
            if not self.file_room.reserve(part, self.service(job).profile, self.clock.now()):
                # Another worker took the last place since _hold: nothing was sent; wait for room.
                raise TransientError(f"part {part.label}: no room for another input file", ambiguous=False)
            self._upload(part, job)
        elif part.state == PartState.UPLOAD_INTENT:
            self._reconcile_upload(part, job)
        elif part.state == PartState.UPLOADED:
            self.store.update_part(part.id, state=PartState.BATCH_INTENT, intent_at=self.clock.now())
            self._create(part, job)
        elif part.state == PartState.BATCH_INTENT:
            self._reconcile_batch(part, job)
        else:
            raise PermanentError(f"part {part.label} is {part.state}; nothing to submit")

    def _rename_models(self, part: Part, job: Job) -> None:
        """The profile's model map, applied to the part file itself before it is sent: the file is
        then exactly the bytes uploaded, so batchd_part_sha256 (and `batchd recover`) describe them."""
        names = self.service(job).profile.model_names
        size = rename_part(_path(part), names) if names else None
        if size is not None:  # byte_size keeps the size checked against the limits; a name is a few bytes
            log.info("models_renamed", job_id=part.job_id, part=part.label, bytes=size)

    def _upload(self, part: Part, job: Job) -> None:
        file_id = self.service(job).upload(_path(part), part.upload_name)
        crashpoints.reach("uploaded")
        self._record_upload(part, file_id, adopted=False)

    def _reconcile_upload(self, part: Part, job: Job) -> None:
        if not self.service(job).profile.supports_list:  # nothing to search: a second upload costs nothing
            self._upload(part, job)
            return
        file_id = self.service(job).find_file(part.upload_name, part.intent_at or 0.0)
        if file_id is None:
            self._upload(part, job)
        else:
            self._record_upload(part, file_id, adopted=True)

    def _record_upload(self, part: Part, file_id: str, *, adopted: bool) -> None:
        # A reason the upload waited for (room on the service, a failed try) no longer holds.
        self.store.update_part(part.id, state=PartState.UPLOADED, file_id=file_id, intent_at=None, last_error=None)
        log.info(
            "file_uploaded",
            job_id=part.job_id,
            part=part.label,
            file_id=file_id,
            bytes=part.byte_size,
            adopted=adopted,
        )

    def _create(self, part: Part, job: Job) -> None:
        assert part.file_id is not None
        assert job.endpoint is not None
        service = self.service(job)
        batch = service.create_batch(
            part.file_id,
            job.endpoint,
            service.profile.completion_window,  # the profile's own, one of those it allows
            batch_metadata(self.settings, job, part),
            self.settings.output_expires_after,
        )
        crashpoints.reach("batch_created")
        self._record_batch(part, batch, service.profile.min_poll_interval, adopted=False)

    def _reconcile_batch(self, part: Part, job: Job) -> None:
        if self.service(job).profile.kind == "anthropic":  # nothing of ours on its batches: see candidate_batches
            self._reconcile_by_requests(part, job)
            return
        found = our_batches(self.service(job), job, part)
        if not found:
            self._create(part, job)
            return
        keep, extra = found[0], found[1:]
        for duplicate in extra:
            if not self.service(job).profile.supports_cancel:  # it runs on; only the kept one's results are collected
                log.error("duplicate_batch_found", job_id=job.id, part=part.label, kept=keep.id, cancelled=None)
                continue
            log.error("duplicate_batch_found", job_id=job.id, part=part.label, kept=keep.id, cancelled=duplicate.id)
            self.service(job).cancel(duplicate.id)
        self._record_batch(part, keep, self.service(job).profile.min_poll_interval, adopted=True)

    def _reconcile_by_requests(self, part: Part, job: Job) -> None:
        """Adopt the batch whose results hold the part's requests, wait while one that may be it runs
        (CandidatesPendingError, a transient error: the part is tried again later), else create."""
        service = self.service(job)
        scratch = self.settings.state / PARTS / job.id
        found = own_batch(service, self.store, part, scratch, self.settings.poll_interval)
        if found is None:
            self._create(part, job)
        else:
            self._record_batch(part, found, service.profile.min_poll_interval, adopted=True)

    def _record_batch(self, part: Part, batch: BatchInfo, min_poll: float, *, adopted: bool) -> None:
        now = self.clock.now()
        wait = max(self.settings.first_poll_after, min_poll)  # the profile's min_poll_interval
        self.store.update_part(
            part.id,
            state=PartState.SUBMITTED,
            batch_id=batch.id,
            batch_status=batch.status,
            batch_json=batch.to_json(),
            submitted_at=now,
            intent_at=None,
            poll_wait=wait,
            next_action_at=now + wait,
            tries=0,
            last_error=None,
        )
        log.info(
            "batch_submitted",
            job_id=part.job_id,
            part=part.label,
            batch_id=batch.id,
            file_id=part.file_id,
            status=batch.status,
            adopted=adopted,
        )

    def _hold_model(self, part: Part, job: Job, exc: TokenLimitError) -> None:
        """The create found the part's model's queue full: learn the limit it names and hold that
        model's batches back, as when a batch fails validation for it (collector._token_refused)."""
        model = part_model(part, job) or ""
        self.holds.hold_model(model, self.holds.note_token_limit(model, str(exc), job.profile), job.profile)

    def _reschedule(self, part_id: int, exc: TransientError) -> None:
        part = self.store.part(part_id)
        if not exc.ambiguous and part.state in _BEFORE_INTENT:
            self.store.update_part(part_id, state=_BEFORE_INTENT[part.state], intent_at=None)
        delay = scheduled_delay(part.tries, exc.retry_after)
        self.store.update_part(
            part_id, tries=part.tries + 1, last_error=str(exc), next_action_at=self.clock.now() + delay
        )
        log.warning(
            "submission_retry_scheduled",
            job_id=part.job_id,
            part=part.label,
            error=str(exc),
            retry_in=round(delay, 1),
            state=str(part.state),
        )

    def _wait_for_room(self, part_id: int, job: Job, exc: FileLimitError) -> None:
        """An upload refused for the service's file limit: the input is fine and nothing is paid
        yet, so the part waits for room instead of failing."""
        part = self.store.part(part_id)
        if part.state != PartState.UPLOAD_INTENT:  # not an upload (only an upload makes an input file)
            self._reschedule(part_id, exc)
            return
        self.file_room.refused(part, job.profile, str(exc), self.clock.now())

    def _revert_intent(self, part_id: int, reason: str, delay: float) -> None:
        # 401/403 are answered before anything is created, so the intent can be undone.
        part = self.store.part(part_id)
        state = _BEFORE_INTENT.get(part.state, part.state)
        self.store.update_part(part_id, state=state, last_error=reason, next_action_at=self.clock.now() + delay)

    def _give_up(self, part_id: int, job: Job, reason: str) -> None:
        """The service refused this part for good (a 4xx): it ends, and its requests are reported."""
        part = self.store.part(part_id)
        self.store.update_part(
            part_id, state=PartState.FINISHED, outcome=PartOutcome.REFUSED, last_error=reason, next_action_at=0
        )
        log.error("submission_rejected", job_id=job.id, part=part.label, file=job.source_name, reason=reason)


def _path(part: Part) -> Path:
    return Path(part.path)
