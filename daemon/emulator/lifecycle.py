"""Batch status progression, computed lazily from timestamps whenever batches are read.

No background thread: every read first replays all transitions that fell due since the last
read, earliest first, so the outcome does not depend on how often anyone polls. Replaying in
time order matters for the queue limit, which depends on which other batches were still
unfinished at the moment a batch left `validating`.

Trigger words in the input's `body.model`:
  * `fail-validation` -> `failed` with a batch-level error at the end of validating;
  * `expire`          -> `expired` at the end of in_progress with about half the requests done;
  * `fail-all`        -> `completed`, every request in the error file, output_file_id null.

A batch the mishaps call endless (see mishaps.py) stops at half its requests and stays
in_progress until it is cancelled.
"""

from __future__ import annotations

import dataclasses
import heapq
from itertools import accumulate
from pathlib import Path
from typing import Any

from daemon.emulator.errors import ApiError
from daemon.emulator.files import FileTable
from daemon.emulator.flavours import flavour_for
from daemon.emulator.ids import stable_fraction, stable_hex
from daemon.emulator.mishaps import Mishaps
from daemon.emulator.records import BatchRecord, InputPlan
from daemon.emulator.results import CANCELLED_CUTOFF, EXPIRED_CUTOFF, ResultJob, write_results
from daemon.emulator.settings import EmulatorSettings
from daemon.emulator.validation import InputScan, batch_error, scan_input

EXPIRE_TRIGGER = "expire"
FAIL_VALIDATION_TRIGGER = "fail-validation"
FAIL_ALL_TRIGGER = "fail-all"
ORGANIZATION = "org-emulator"
DEFAULT_OUTPUT_EXPIRY_SECONDS = 30 * 86_400
# Batches whose tokens count against the queue limit: admitted and not yet finished.
ENQUEUED_STATUSES = frozenset({"in_progress", "finalizing", "cancelling"})


def build_plan(scan: InputScan, settings: EmulatorSettings) -> InputPlan:
    """Decide output order, failing requests and how many finish, all from seed + custom_id."""
    requests = scan.requests
    seed = settings.seed
    order = sorted(range(len(requests)), key=lambda index: stable_hex(seed, "order", requests[index].custom_id))
    fail_all = FAIL_ALL_TRIGGER in scan.model
    failing = [
        fail_all or stable_fraction(seed, "error", requests[index].custom_id) < settings.request_error_rate
        for index in order
    ]
    target = len(requests) // 2 if EXPIRE_TRIGGER in scan.model else len(requests)
    tokens = int(sum(request.tokens for request in requests) * settings.token_weight)
    return InputPlan(scan.model, requests, order, failing, list(accumulate(failing, initial=0)), target, tokens)


def token_limit_error(model: str, limit: int) -> dict[str, Any]:
    message = (
        f"Enqueued token limit reached for {model} in organization {ORGANIZATION}. "
        f"Limit: {limit:,} enqueued tokens. "
        "Please try again once some in_progress batches have been completed."
    )
    return batch_error("token_limit_exceeded", message)


class Lifecycle:
    def __init__(self, settings: EmulatorSettings, files: FileTable, mishaps: Mishaps | None = None) -> None:
        self._settings = settings
        self._files = files
        self._mishaps = mishaps or Mishaps()
        self._flavour = flavour_for(settings)

    def advance(self, active: dict[str, BatchRecord], now: float) -> None:
        """Apply every transition due by `now`, earliest first, then refresh progress counts."""
        due: list[tuple[float, int, str]] = []
        for batch in active.values():
            self._schedule(due, batch, now)
        while due:
            moment, _, batch_id = heapq.heappop(due)
            batch = active[batch_id]
            self._fire(batch, moment, active)
            self._schedule(due, batch, now)
        for batch in active.values():
            if batch.status == "in_progress":
                self._set_progress(batch, self._processed(batch, now))

    def replan(self, batch: BatchRecord) -> None:
        """Work out again the plan a batch had before a restart: it follows from its input and the seed."""
        try:
            scan = scan_input(batch.input_path, batch.endpoint, self._flavour.line_url)
        except OSError:
            return  # its input is gone: it is reported with no requests
        if isinstance(scan, list):
            return
        plan = build_plan(scan, self._settings)
        if self._mishaps.endless(batch.id):
            plan = dataclasses.replace(plan, target=len(plan.requests) // 2)
        batch.plan = plan

    def cancel(self, batch: BatchRecord, now: float) -> None:
        """Start cancelling; requests finished by now will be in the output. Idempotent while cancelling."""
        if batch.status == "cancelling":
            return
        if batch.terminal:
            raise ApiError(409, f"Cannot cancel a batch with status '{batch.status}'.")
        if batch.plan is not None:
            finished = self._processed(batch, now) if batch.status == "in_progress" else batch.plan.target
            batch.processed_at_cancel = finished
            self._set_progress(batch, finished)
        batch.status = "cancelling"
        batch.times["cancelling_at"] = now

    def _next_event(self, batch: BatchRecord) -> float | None:
        settings = self._settings
        if batch.status == "validating":
            return batch.created + settings.validating_seconds
        durations = {
            "in_progress": settings.in_progress_seconds,
            "finalizing": settings.finalizing_seconds,
            "cancelling": settings.cancelling_seconds,
        }
        if batch.status == "in_progress" and (self._mishaps.endless(batch.id) or self._never_expires(batch)):
            return None  # runs until cancelled
        if batch.status in durations:
            return batch.times[f"{batch.status}_at"] + durations[batch.status]
        return None

    def _never_expires(self, batch: BatchRecord) -> bool:
        """An `expire` batch on a service without expiry: stalls half-way, in_progress until cancelled."""
        return not self._flavour.expires and batch.plan is not None and EXPIRE_TRIGGER in batch.plan.model

    def _schedule(self, due: list[tuple[float, int, str]], batch: BatchRecord, now: float) -> None:
        moment = self._next_event(batch)
        if moment is not None and moment <= now:
            heapq.heappush(due, (moment, batch.seq, batch.id))

    def _fire(self, batch: BatchRecord, moment: float, active: dict[str, BatchRecord]) -> None:
        if batch.status == "validating":
            self._end_validation(batch, moment, active)
        elif batch.status == "in_progress":
            self._end_in_progress(batch, moment)
        elif batch.status == "finalizing":
            self._finish(batch, moment, "completed", None)
        elif batch.status == "cancelling":
            self._finish(batch, moment, "cancelled", CANCELLED_CUTOFF)

    def _end_validation(self, batch: BatchRecord, moment: float, active: dict[str, BatchRecord]) -> None:
        try:
            scan = scan_input(batch.input_path, batch.endpoint, self._flavour.line_url)
        except OSError:
            scan = [batch_error("invalid_request", "The input file could not be read.")]
        if isinstance(scan, list):
            self._fail(batch, moment, scan)
            return
        batch.model = scan.model
        plan = build_plan(scan, self._settings)
        problem = self._admission_problem(batch, plan, active)
        if problem is not None:
            self._fail(batch, moment, [problem])
            return
        if self._mishaps.endless(batch.id):  # stalls half-way, so a cancel leaves work undone
            plan = dataclasses.replace(plan, target=len(plan.requests) // 2)
        batch.plan = plan
        batch.status = "in_progress"
        batch.times["in_progress_at"] = moment

    def _admission_problem(
        self, batch: BatchRecord, plan: InputPlan, active: dict[str, BatchRecord]
    ) -> dict[str, Any] | None:
        model_problem = self._flavour.model_problem(plan)
        if model_problem is not None:
            return model_problem
        if FAIL_VALIDATION_TRIGGER in plan.model:
            message = f"Emulated validation failure: model '{plan.model}' is not available for batch."
            return batch_error("invalid_request", message, line=plan.requests[0].line, param="body.model")
        limit = self._settings.token_limit
        if limit is None:
            return None
        enqueued = sum(
            other.plan.tokens
            for other in active.values()
            if other is not batch
            and other.plan is not None
            and other.model == plan.model
            and other.status in ENQUEUED_STATUSES
        )
        return token_limit_error(plan.model, limit) if enqueued + plan.tokens > limit else None

    def _fail(self, batch: BatchRecord, moment: float, errors: list[dict[str, Any]]) -> None:
        batch.errors = errors
        batch.status = "failed"
        batch.times["failed_at"] = moment

    def _end_in_progress(self, batch: BatchRecord, moment: float) -> None:
        assert batch.plan is not None  # in_progress always has a plan
        self._set_progress(batch, batch.plan.target)
        if EXPIRE_TRIGGER in batch.plan.model:
            self._finish(batch, moment, "expired", EXPIRED_CUTOFF)
            return
        if not self._flavour.finalizes:
            self._finish(batch, moment, "completed", None)
            return
        batch.status = "finalizing"
        batch.times["finalizing_at"] = moment

    def _processed(self, batch: BatchRecord, now: float) -> int:
        """Requests done after `now - in_progress_at` seconds: grows linearly up to plan.target."""
        assert batch.plan is not None
        target = batch.plan.target
        duration = self._settings.in_progress_seconds
        elapsed = now - batch.times["in_progress_at"]
        if duration <= 0 or elapsed >= duration:
            return target
        # The epsilon absorbs float noise in large unix timestamps (0.3 s must not read as 0.2999).
        return min(target, int(target * elapsed / duration + 1e-6))

    def _set_progress(self, batch: BatchRecord, processed: int) -> None:
        assert batch.plan is not None
        batch.failed = batch.plan.fail_prefix[processed]
        batch.completed = processed - batch.failed

    def _finish(self, batch: BatchRecord, moment: float, status: str, cutoff: tuple[str, str] | None) -> None:
        if batch.plan is not None:
            self._write_files(batch, moment, cutoff)
        batch.status = status
        batch.times[f"{status}_at"] = moment

    def _write_files(self, batch: BatchRecord, moment: float, cutoff: tuple[str, str] | None) -> None:
        assert batch.plan is not None
        finished = batch.processed_at_cancel if batch.processed_at_cancel is not None else batch.plan.target
        job = ResultJob(
            batch_id=batch.id,
            endpoint=batch.endpoint,
            plan=batch.plan,
            input_path=batch.input_path,
            finished=finished,
            cutoff=cutoff,
            seed=self._settings.seed,
            created=int(moment),
            output_path=self._files.staging_path(),
            error_path=self._files.staging_path(),
            string_bodies=self._settings.string_bodies or self._flavour.string_bodies,
            drop_finished=self._settings.drop_cancelled_results and cutoff == CANCELLED_CUTOFF,
            content_filters=self._flavour.content_filters,
        )
        tally = write_results(job)
        if tally.error_path is None and self._flavour.always_error_file:
            tally.error_path = job.error_path
            tally.error_path.touch()  # the empty error file this service returns when nothing failed
        batch.completed, batch.failed = tally.completed, tally.failed
        batch.input_tokens, batch.output_tokens = tally.input_tokens, tally.output_tokens
        batch.output_file_id = self._register(batch, tally.output_path, "output", moment)
        batch.error_file_id = self._register(batch, tally.error_path, "error", moment)

    def _register(self, batch: BatchRecord, staged: Path | None, kind: str, moment: float) -> str | None:
        if staged is None:
            return None
        created_at = int(moment)
        seconds = batch.output_expires_after or DEFAULT_OUTPUT_EXPIRY_SECONDS
        purpose = self._flavour.output_purpose
        record = self._files.add(staged, f"{batch.id}_{kind}.jsonl", purpose, created_at, created_at + seconds)
        return record.id
