"""How a job ends when it did not run to the end: the operator abandoned it, or the service lost
one of its batches. Either way what was collected is kept, the input goes to failed/, and the
report says what happened and what to do. The operator's request is recorded on the job
(``abandon_requested_at``, ``abandon_after_cancel``), written by ``batchd abandon`` (cli/abandon.py)
and read by every step that could send more; its note for people is derived from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from daemon.config import CANCEL_NOTE
from daemon.state.rows import ABANDON_NOTE, ABANDON_TIME, CANCELLED_FIRST, Job, Part
from daemon.state.states import PartOutcome


@dataclass(frozen=True, slots=True)
class Ending:
    reason: str
    lines: list[str]
    advice: str
    event: str  # logged at error level when the job ends so


def abandon_note(job: Job) -> str:
    """The operator's abandon, in words: the report's reason, the ended job's note."""
    when = time.strftime(ABANDON_TIME, time.gmtime(job.abandon_requested_at or 0))
    return f"{ABANDON_NOTE} at {when}{CANCELLED_FIRST if job.abandon_after_cancel else ''}"


def shown_note(job: Job) -> str | None:
    """The note `batchd status` shows: the operator's request (from its columns), then the job's note."""
    requests = [abandon_note(job)] if job.abandoned else [CANCEL_NOTE] if job.cancel_requested else []
    notes = [n for n in [*requests, job.note] if n]
    return "; ".join(dict.fromkeys(notes)) or None


def sends_nothing_more(job: Job) -> bool:
    """Cancelled or abandoned: nothing of the job is submitted or resubmitted any more."""
    return job.cancel_requested or job.abandoned


def cancel_stands(job: Job) -> bool:
    """Cancelled, and not abandoned since: an abandonment takes the job's ending over."""
    return job.cancel_requested and not job.abandoned


def early_ending(job: Job, parts: list[Part]) -> Ending | None:
    """The ending of a job that was abandoned or lost a batch; None for any other job."""
    name = job.source_name
    kept = f"Results that were collected are kept in {job.result_dir}."
    if job.abandoned:
        lines = [_line(p) for p in parts if p.outcome == PartOutcome.ABANDONED]
        advice = (
            f"{kept} Nothing more is sent for this input. `batchd retry {name}` sends all of it again as a new "
            "job; requests that already ran would run, and be paid for, again."
        )
        return Ending(abandon_note(job), lines, advice, "job_abandoned")
    lost = [p for p in parts if p.outcome == PartOutcome.LOST]
    if not lost:
        return None
    ids = ", ".join(str(p.batch_id) for p in lost)
    advice = (
        f"{kept} `batchd retry {name}` sends this input again as a new job. Requests of a lost batch may "
        "have run and been paid for, though no result came back; the retry runs them again."
    )
    reason = f"the service no longer knows batch(es) {ids}; their requests got no result (batch_lost)"
    return Ending(reason, [_line(p) for p in lost], advice, "job_failed")


def _line(part: Part) -> str:
    head = f"part {part.label} (input lines from {part.first_line}, {part.request_count} requests)"
    batch = f", batch {part.batch_id}" if part.batch_id else ", no batch yet"
    return f"{head}{batch}: {part.last_error or part.shown_status}"
