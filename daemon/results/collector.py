"""Collection: download what finished batches produced, resubmit what never ran, write results.

A part's outputs are downloaded into the job's results folder once its batch is terminal. An
expired (or, if configured, cancelled) batch's unfinished requests become a new part of the same
segment; nothing that succeeded is ever sent again. When every part is done, the results are
merged in input order, the summary is written and the input is archived.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from daemon import crashpoints
from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.errors import AccountError, PermanentError, TransientError
from daemon.intake.model_names import echoed_names
from daemon.intake.partial_inputs import read_note
from daemon.intake.quarantine import failed_place
from daemon.intake.recheck import InputChangedError, read_checked
from daemon.intake.refitter import NEW_PARTS, Verdict, next_attempt
from daemon.intake.reports import FIX_ADVICE, PART_REFUSED_ADVICE, write_report
from daemon.intake.routes import routes_path
from daemon.intake.validation import iter_lines
from daemon.logs import get_logger
from daemon.results.anthropic_results import result_form_of
from daemon.results.interleaver import LaneMerge, merge_lanes
from daemon.results.merger import RESULTS_NAME, Segment, ids_at, index_outputs, merge, write_output_order
from daemon.results.outcome import FAILED
from daemon.results.retry_codes import retryable_ids
from daemon.results.summary import build_summary
from daemon.results.unpacker import unpack
from daemon.results.verification import (
    Downloads,
    UnverifiedDownloadError,
    Verification,
    problem_entries,
    unmatched_name,
    unverified_batches,
)
from daemon.results_sharing import results_sharing
from daemon.service.batch_info import BatchInfo, part_batch
from daemon.service.batch_service import BatchService
from daemon.service.holds import Holds, learned_limit
from daemon.service.overdue_batches import resubmission_status
from daemon.service.part_steps import PartSteps
from daemon.service.profile_services import ProfileServices
from daemon.service.remote_cleanup import schedule_deletions
from daemon.service.retrying import scheduled_delay
from daemon.state.archive import move_input
from daemon.state.fileops import atomic_writer, free_name, safe_component, write_atomic
from daemon.state.folders import PARTS
from daemon.state.job_endings import Ending, early_ending, sends_nothing_more
from daemon.state.rows import Job, Part, part_model
from daemon.state.states import PACK_KIND, JobState, PartOrigin, PartState
from daemon.state.store import Store

log = get_logger(__name__)
SUMMARY_NAME = "summary.json"
# A segment that keeps expiring is resubmitted this many times at most, then reported as not run.
MAX_RESUBMISSIONS = 3
_DONE_PARTS = frozenset({PartState.DOWNLOADED, PartState.SUPERSEDED})


def download_names(batch_id: str) -> tuple[str, str]:
    return f"{batch_id}_output.jsonl", f"{batch_id}_errors.jsonl"


class Collector(PartSteps):
    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: BatchService | ProfileServices,
        holds: Holds,
        stop: threading.Event,
        *,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        super().__init__(settings, store, remote, holds, stop, clock=clock)
        self._finishing: dict[str, threading.Lock] = {}  # one finish_job at a time per job
        self._finishing_guard = threading.Lock()
        self.verification = Verification(store, settings.verify_downloads_for, clock)
        self.sharing = results_sharing(settings.results_group, settings.results_mode)

    def collect_part(self, part_id: int) -> None:
        """Bring a FINISHED part to DOWNLOADED (or requeue it); then finish its job if it was the last."""
        part = self.store.part(part_id)
        job = self.store.job(part.job_id)
        try:
            self.retried(part_id, job, self._collect, "download")
        except (TransientError, AccountError, UnverifiedDownloadError) as exc:
            if isinstance(exc, AccountError):
                self.holds.block_account(str(exc), job.profile)
            delay = scheduled_delay(part.tries, getattr(exc, "retry_after", None))
            self.store.update_part(
                part_id, tries=part.tries + 1, last_error=str(exc), next_action_at=self.clock.now() + delay
            )
            log.warning(
                "download_retry_scheduled",
                job_id=job.id,
                part=part.label,
                error=str(exc),
                retry_in=round(delay, 1),
            )
            return
        except PermanentError as exc:  # e.g. the output file expired on the service: keep what we have
            log.error("download_failed", job_id=job.id, part=part.label, batch_id=part.batch_id, error=str(exc))
            batch = part_batch(part)
            if batch is not None:
                downloads = self._downloads_of(batch, Path(job.result_dir or ""), job, part)
                self.verification.record_unfetched(job, part, downloads, str(exc))
            self.store.update_part(part_id, state=PartState.DOWNLOADED, last_error=str(exc))
        crashpoints.reach("collected")
        self.finish_job(job.id)

    def _collect(self, part: Part, job: Job) -> None:
        if part.state != PartState.FINISHED:
            return
        batch = part_batch(part)
        refused = batch is not None and part.batch_status == "failed" and _token_limited(batch)
        if refused and batch is not None and self._token_refused(part, job, batch):
            return
        folder = Path(job.result_dir or "")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        verified = True
        retry: set[str] = set()
        if batch is not None:
            batch = self._refreshed(part, job, batch) if self.verification.failing(batch.id) else batch
            self._download(batch, folder, job)
            verified = self.verification.check(job, part, self._downloads_of(batch, folder, job, part))
            retry = retryable_ids(_part_downloads(folder, batch.id), self.settings.retry_failed_codes)
        if (
            verified  # requests of a batch whose downloads did not add up may have run: never sent again
            and (resubmission_status(self.store, part) in self.settings.resubmit_unfinished or retry)
            and not sends_nothing_more(self.store.job(job.id))  # re-read: a cancel may have come since
            and _resubmissions(self.store.parts(part.job_id), part) < MAX_RESUBMISSIONS
            and not part.imported_without_input  # its requests are not here to resend
        ):
            self._resubmit_unfinished(part, folder, retry)
        else:
            self.store.update_part(part.id, state=PartState.DOWNLOADED)

    def _download(self, batch: BatchInfo, folder: Path, job: Job) -> None:
        for file_id, name in zip((batch.output_file_id, batch.error_file_id), download_names(batch.id), strict=True):
            dest = folder / name
            if file_id and not dest.exists():  # Azure sends "" for "no file"
                size = self.service(job).download(file_id, dest)
                log.info("results_downloaded", job_id=job.id, batch_id=batch.id, file=name, bytes=size)

    def _refreshed(self, part: Part, job: Job, batch: BatchInfo) -> BatchInfo:
        """Downloads that did not add up may come from a stale or mangled batch object (no output
        file yet, counts of another moment): ask the service again before the next download."""
        fresh = self.service(job).retrieve(batch.id)
        if fresh.status != part.batch_status or _counted(fresh) < _counted(batch):
            return batch  # a terminal batch changes neither its status nor its counts: not to be trusted
        self.store.update_part(part.id, batch_json=fresh.to_json())
        return fresh

    @staticmethod
    def _downloads_of(batch: BatchInfo, folder: Path, job: Job, part: Part) -> Downloads:
        output, errors = (folder / name for name in download_names(batch.id))
        requests = None if part.imported_without_input else _request_file(job, part)
        return Downloads(batch, [("output", output), ("errors", errors)], requests)

    def _token_refused(self, part: Part, job: Job, batch: BatchInfo) -> bool:
        """The model's enqueued-token limit refused the batch (the part's model: an input split by
        model has a queue per model). True: handled (split to fit, or sent again later); False: it
        can never fit as it is and is collected as refused."""
        message = " ".join(e.message or "" for e in batch.errors)
        model = part_model(part, job) or ""
        limit = self.holds.note_token_limit(model, message, job.profile)
        reported = learned_limit(message) is not None
        verdict = Verdict.FITS if limit is None else self.refitter.refit(part, job, limit, reported=reported)
        # Refused a second time with nothing of ours queued: it is bigger than its estimate. (Once
        # could be another client of the account filling the queue.)
        alone = part.old_batch_ids and self.store.enqueued_tokens(model, job.profile) == 0
        if verdict is Verdict.FITS and limit is not None and alone:
            verdict = self.refitter.halve(part, job, limit)
        if verdict is Verdict.FITS:  # not too big: the queue was full, so wait for room
            self.holds.hold_model(model, limit, job.profile)
            self._requeue(part, job, batch, message)
        return verdict is not Verdict.REFUSED

    def _requeue(self, part: Part, job: Job, batch: BatchInfo, message: str) -> None:
        """The model's queue was full: not the input's fault. Submit the same file again later."""
        old = ",".join(filter(None, [part.old_batch_ids, part.batch_id]))
        self.store.update_part(
            part.id,
            state=PartState.UPLOADED,
            batch_id=None,
            batch_status=None,
            batch_json=None,
            old_batch_ids=old,
            last_error=f"token_limit_exceeded: {message}",
            next_action_at=0,
        )
        log.warning("batch_requeued", job_id=job.id, part=part.label, batch_id=batch.id, reason="token_limit_exceeded")

    def _resubmit_unfinished(self, part: Part, folder: Path, retry: set[str]) -> None:
        """Put the requests that never ran (and the failures to ``retry``) into a new part; the
        others that ran are never sent again."""
        with NEW_PARTS:
            self._add_unfinished(part, folder, retry)

    def _add_unfinished(self, part: Part, folder: Path, retry: set[str]) -> None:
        assert part.batch_id is not None
        ran = _ran_ids(_part_downloads(folder, part.batch_id)) - retry
        attempt = next_attempt(self.store.parts(part.job_id), part.segment)  # a refitted segment has several
        new_path = Path(part.path).with_name(f"{part.segment}.{attempt}.jsonl")
        count, size = _write_unfinished(Path(part.path), new_path, ran)
        now = self.clock.now()
        with self.store.transaction():
            if count:
                self.store.add_part(
                    Part(
                        part.job_id,
                        part.segment,
                        attempt,
                        str(new_path),
                        part.first_line,
                        count,
                        size,
                        max(1, size // 4),
                        PartState.READY,
                        now,
                        now,
                        model=part.model,
                    )
                )
            self.store.update_part(part.id, state=PartState.SUPERSEDED if count else PartState.DOWNLOADED)
        log.info(
            "unfinished_resubmitted",
            job_id=part.job_id,
            part=part.label,
            batch_id=part.batch_id,
            requests=count,
            retried_failures=len(retry),
            status=part.batch_status,
        )

    def finish_job(self, job_id: str) -> None:
        """Merge, summarise and archive once every part of the job is done (idempotent).

        Both a part's download and the engine (for COLLECTING jobs) call this, on different
        workers: two merges into the same temp file and two moves of the input would race.
        """
        with self._finishing_guard:
            lock = self._finishing.setdefault(job_id, threading.Lock())
        with lock:
            if self.quarantine.guard(job_id, "finish", partial(self._finish_job, job_id)):
                with self._finishing_guard:
                    self._finishing.pop(job_id, None)

    def _finish_job(self, job_id: str) -> bool:
        job = self.store.job(job_id)
        parts = self.store.parts(job_id)
        if job.state not in (JobState.ACTIVE, JobState.COLLECTING) or any(p.state not in _DONE_PARTS for p in parts):
            return False
        self.store.update_job(job_id, state=JobState.COLLECTING)
        folder = Path(job.result_dir or "")
        if job.kind == PACK_KIND:  # its results belong to its members: hand them back
            unpack(self.settings, self.store, job, parts, _downloads(parts, folder, with_unmatched=True))
            return True
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch = self.settings.state / PARTS / job_id
        unverified = set(unverified_batches(self.store, parts))
        try:
            model_map = self.service(job).profile.model_names
            segments, changed = _segments(job, parts, folder, scratch, unverified, model_map), None
        except InputChangedError as exc:  # its results are paid for: keep them, in the service's order
            segments, changed = _segments_in_output_order(parts, folder, scratch), exc
        in_order = changed is None
        changed = changed or _resized(job)
        for segment in segments:  # a request without a result is written in its service's line shape
            segment.result_form = result_form_of(self.service(job).profile)
        counts, lanes = self._merge(job, segments, scratch, in_order)
        now = self.clock.now()
        by_model = lanes.lanes if lanes is not None else None
        summary = build_summary(job, parts, counts, now, folder / RESULTS_NAME, self.settings.prices, by_model)
        if lanes is not None and lanes.out_of_order is not None:
            summary["results_order"] = f"model by model, not in input order: {lanes.out_of_order}"
        summary["problems"] = problem_entries(self.store, parts)
        if (split_out := read_note(folder)) is not None:  # lines of the input that were never sent
            summary["split_out"] = split_out
        write_atomic(folder / SUMMARY_NAME, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        self._share(folder)
        log.info("results_written", job_id=job_id, file=job.source_name, folder=str(folder), **summary["outcomes"])
        _warn_unsuccessful(job, summary)
        schedule_deletions(self.settings, self.store, job, parts)  # results are durable; due once the job ends
        self._archive(job, parts, now, changed, in_order)
        shutil.rmtree(self.settings.state / PARTS / job_id, ignore_errors=True)
        return True

    def _merge(
        self, job: Job, segments: list[Segment], scratch: Path, in_order: bool
    ) -> tuple[Counter[str], LaneMerge | None]:
        """results.jsonl in input order: segment after segment, or for an input split by model
        (its segments name several models) interleaved by its routes file (then also each model's
        merged results, for the summary)."""
        dest, normalise = Path(job.result_dir or "") / RESULTS_NAME, self.settings.normalise_bodies
        if len({segment.model for segment in segments}) < 2:
            return merge(segments, dest, normalise), None
        lanes = merge_lanes(segments, scratch, dest, routes_path(scratch) if in_order else None, normalise)
        if lanes.out_of_order is not None and in_order:  # a changed input is reported as such (_fail_changed)
            log.warning("results_out_of_order", job_id=job.id, file=job.source_name, reason=lanes.out_of_order)
        return lanes.counts, lanes

    def _share(self, folder: Path) -> None:
        """Complete results become readable by results_group; a failure to do so never holds the job up."""
        try:
            self.sharing.share_tree(folder)
        except OSError as exc:
            log.warning("results_not_shared", folder=str(folder), error=exc.strerror, hint="check results_group")

    def _archive(
        self, job: Job, parts: list[Part], now: float, changed: InputChangedError | None = None, in_order: bool = True
    ) -> None:
        ending = early_ending(job, parts)
        if ending is not None:
            self._end_early(job, parts, now, ending)
            return
        refused = [p for p in parts if p.state == PartState.DOWNLOADED and p.refused]
        if changed is not None:
            self._fail_changed(job, now, changed, in_order)
            return
        if not refused:
            dest = self._place_input(job, parts, self.settings.uploaded)
            self.store.update_job(job.id, state=JobState.DONE, finished_at=now)
            log.info("job_done", job_id=job.id, file=job.source_name, archived=str(dest))
            return
        dest = self._place_input(job, parts, self.settings.failed)
        lines = [line for p in refused for line in _refusal_lines(p)]
        reason = "the service refused part of this input; results that finished are in " + (job.result_dir or "")
        ran = len(refused) < len([p for p in parts if p.state == PartState.DOWNLOADED])
        advice = PART_REFUSED_ADVICE.format(job_id=job.id, name=dest.name) if ran else FIX_ADVICE
        write_report(dest, job.source_name, job.id, reason, lines, advice, self.sharing, self.settings.root)
        self.store.update_job(job.id, state=JobState.FAILED, finished_at=now, note=reason)
        log.error("job_failed", job_id=job.id, file=job.source_name, moved_to=str(dest))

    def _end_early(self, job: Job, parts: list[Part], now: float, ending: Ending) -> None:
        dest = self._place_input(job, parts, self.settings.failed)
        advice, root = ending.advice, self.settings.root
        write_report(dest, job.source_name, job.id, ending.reason, ending.lines, advice, self.sharing, root)
        self.store.update_job(job.id, state=JobState.FAILED, finished_at=now, note=ending.reason)
        level = log.warning if ending.event == "job_abandoned" else log.error  # an abandon is on purpose
        level(ending.event, job_id=job.id, file=job.source_name, moved_to=str(dest), reason=ending.reason)

    def _fail_changed(self, job: Job, now: float, changed: InputChangedError, in_order: bool) -> None:
        """The input changed after it was checked and sent: its results are kept, the input fails."""
        dest = failed_place(self.settings, self.store, job)
        lines = [
            f"Changed: {changed.detail}.",
            "The requests sent were the ones checked when the file was handed over; nothing added or",
            f"changed since was sent. Their results are in {job.result_dir}, "
            + (
                "in input order."
                if in_order
                else "in the order the service returned them (the input's order is unknown now); a request "
                "without any result line is not listed there."
            ),
        ]
        write_report(dest, job.source_name, job.id, str(changed), lines, sharing=self.sharing, root=self.settings.root)
        self.store.update_job(job.id, state=JobState.FAILED, finished_at=now, note=str(changed))
        log.error("input_changed", job_id=job.id, file=job.source_name, detail=changed.detail, moved_to=str(dest))

    def _place_input(self, job: Job, parts: list[Part], folder: Path) -> Path:
        """Archive the input; a job imported from the seed script may have it archived, or not at all."""
        origins = {p.origin for p in parts}
        if PartOrigin.IMPORTED_WITHOUT_INPUT in origins:  # no input here: a report still needs a name
            return free_name(folder, safe_component(job.source_name), job.id)
        if PartOrigin.IMPORTED in origins and folder == self.settings.uploaded:  # where the script put it
            return Path(job.inflight_path)
        return move_input(self.store, job, folder)


def _warn_unsuccessful(job: Job, summary: dict[str, Any]) -> None:
    """A job whose requests did not all succeed is worth a person's look, whatever its state."""
    outcomes = summary["outcomes"]
    if outcomes["failed"] or outcomes["not_run"]:
        codes = {code: entry["count"] for code, entry in summary["failures"].items()}
        log.warning("requests_unsuccessful", job_id=job.id, file=job.source_name, **outcomes, codes=codes)


def _counted(batch: BatchInfo) -> int:
    counts = batch.request_counts
    return (counts.completed or 0) + (counts.failed or 0) if counts else 0


def _token_limited(batch: BatchInfo) -> bool:
    return any(e.code == "token_limit_exceeded" for e in batch.errors)


def _resubmissions(parts: list[Part], part: Part) -> int:
    """How often ``part``'s requests were resubmitted unfinished: its superseded forebears, which
    share its first line (a refitted part's new parts each start a line of their own)."""
    return sum(
        1
        for p in parts
        if p.segment == part.segment
        and p.attempt < part.attempt
        and p.state == PartState.SUPERSEDED
        and p.first_line == part.first_line
        and p.batch_status not in (None, "failed")
    )


def _part_downloads(folder: Path, batch_id: str) -> list[Path]:
    return [folder / name for name in download_names(batch_id)]


def _ran_ids(downloads: list[Path]) -> set[str]:
    index = index_outputs([p for p in downloads if p.exists()])
    return {custom_id for custom_id, entry in index.items() if entry.rank >= FAILED}


def _write_unfinished(source: Path, dest: Path, ran: set[str]) -> tuple[int, int]:
    count = size = 0
    with open(source, "rb") as src, atomic_writer(dest) as out:
        for _, raw in iter_lines(src):
            if orjson.loads(raw)["custom_id"] not in ran:
                out.write(raw)
                count, size = count + 1, size + len(raw)
    if count == 0:
        dest.unlink()
    return count, size


def _segments(
    job: Job, parts: list[Part], folder: Path, scratch: Path, unverified: set[str], model_map: Mapping[str, str]
) -> list[Segment]:
    segments: dict[int, Segment] = {}
    in_output_order: list[Segment] = []
    for part in sorted(parts, key=lambda p: (p.segment, p.attempt)):
        if part.segment not in segments and part.imported_without_input:
            in_output_order.append(segments.setdefault(part.segment, Segment(scratch / f"{part.segment}.order.jsonl")))
        if part.segment not in segments:
            names = echoed_names(model_map, part_model(part, job))  # each model's own, for a split input
            segments[part.segment] = Segment(_order_file(job, part, scratch), model_names=names, model=part.model)
        seg = segments[part.segment]
        seg.last_status = part.shown_status
        seg.ran_reported = _ran_reported(part, seg.ran_reported if part.attempt else 0)
        seg.results_missing = part.batch_id in unverified
        seg.downloads += _downloads([part], folder)
    _write_output_orders(in_output_order)
    return [segments[k] for k in sorted(segments)]


def _ran_reported(part: Part, earlier: int | None) -> int | None:
    """``earlier`` plus what the part's batch says ran; None once any count is unknown (a shared
    batch counts every input's requests, not this part's)."""
    batch = part_batch(part)
    counts = batch.request_counts if batch is not None else None
    if earlier is None or part.pack_id or counts is None:
        return None
    return earlier + (counts.completed or 0) + (counts.failed or 0)


def _resized(job: Job) -> InputChangedError | None:
    """A cheap look at an input that is not read again (its part files were written as it was
    checked): a size other than the one checked means it changed. Its sha256 is not recomputed:
    that would read a file of up to gigabytes once more, only to say what the size says."""
    source = job.inflight_path if os.path.lexists(job.inflight_path) else job.final_path
    if job.size is None or not source or not os.path.lexists(source):
        return None
    size = os.lstat(source).st_size
    return None if size == job.size else InputChangedError(job, f"size was {job.size:,} bytes, now {size:,}")


def _segments_in_output_order(parts: list[Part], folder: Path, scratch: Path) -> list[Segment]:
    """Segments ordered as the service returned their results: for an input whose order is lost."""
    segments: dict[int, Segment] = {}
    for part in sorted(parts, key=lambda p: (p.segment, p.attempt)):
        seg = segments.setdefault(part.segment, Segment(scratch / f"{part.segment}.order.jsonl", model=part.model))
        seg.last_status = part.shown_status
        seg.downloads += _downloads([part], folder)
    _write_output_orders(list(segments.values()))
    return [segments[k] for k in sorted(segments)]


def _write_output_orders(segments: list[Segment]) -> None:
    """Stand-in request files listing each segment's custom_ids as its downloads give them, for
    segments whose input order is not here (imported without it, or changed since it was sent)."""
    for seg in segments:
        seg.part_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_output_order(seg.downloads, seg.part_file)


def _request_file(job: Job, part: Part) -> Path:
    """Where the part's custom_ids can be read, for checking downloads against them: its part file
    or, for a small input that shared a batch, the input (in flight, or archived by a crash)."""
    if part.holds_input and job.final_path and not os.path.lexists(part.path):
        return Path(job.final_path)
    return Path(part.path)


def _order_file(job: Job, part: Part, scratch: Path) -> Path:
    """The file giving the part's request order: its part file or, for a small input that shared
    a batch without one, the input itself (which a crash may have left archived before the job
    ended), copied from the bytes that were checked (recheck.InputChangedError if it changed)."""
    if not part.holds_input:
        return Path(part.path)
    source = Path(part.path)
    if job.final_path and not os.path.lexists(source):
        source = Path(job.final_path)
    order = scratch / f"{part.segment}.order.jsonl"
    order.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    order.write_bytes(read_checked(job, source))  # scratch only: rebuilt if a crash cuts it short
    return order


def _downloads(parts: list[Part], folder: Path, with_unmatched: bool = False) -> list[Path]:
    """The parts' downloaded files in ``folder``, oldest batch first (a packed input's earlier
    batches are its pack's, whose unfinished requests went again in a later batch); and, for a
    pack to hand back, the lines of its downloads that did not verify."""
    found: list[Path] = []
    for part in sorted(parts, key=lambda p: p.attempt):
        for batch_id in [*filter(None, part.old_batch_ids.split(",")), part.batch_id]:
            if batch_id:
                names = [*download_names(batch_id), *([unmatched_name(batch_id)] if with_unmatched else [])]
                found += [p for p in (folder / n for n in names) if p.exists()]
    return found


def _refusal_lines(part: Part) -> list[str]:
    batch = part_batch(part)
    requests = f"{part.request_count} request" + ("s" if part.request_count != 1 else "")
    model = f"model {part.model}, " if part.model else ""  # one model's part of an input split by model
    head = f"part {part.label} ({model}input lines from {part.first_line}, {requests})"
    if batch is None or not batch.errors:
        return [f"{head}: {part.last_error or part.shown_status}"]
    ids = ids_at(Path(part.path), {e.line for e in batch.errors if e.line})
    return [f"{head}, batch {batch.id}: {_batch_line(e.line, ids)}: {e.code}: {e.message}" for e in batch.errors]


def _batch_line(line: int | None, ids: dict[int, str]) -> str:
    """The service's line number is the batch's, not the input's: the request's custom_id says which."""
    custom_id = ids.get(line) if line else None
    return f"line {line} of the batch" + (f" (custom_id {custom_id!r})" if custom_id else "")
