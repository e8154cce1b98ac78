"""How a job ends when it did not run to the end: the operator abandoned it, or the service lost
one of its batches. Either way what was collected is kept, the input goes to failed/, and the
report says what happened and what to do. The operator's request is a note on the job, written by
``batchd abandon`` (cli/abandon.py) and read by every step that could send more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from daemon.state.rows import Job, Part
from daemon.state.states import LOST_STATUS

ABANDON_NOTE = "abandoned by the operator"  # every abandoned job's note starts so
_CANCELLED = "; its batches were cancelled first"
ABANDONED_STATUS = "abandoned"  # the batch status recorded for a part the operator gave up on


@dataclass(frozen=True, slots=True)
class Ending:
    reason: str
    lines: list[str]
    advice: str
    event: str  # logged at error level when the job ends so


def abandon_note(now: float, *, cancelled: bool) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    return f"{ABANDON_NOTE} at {when}{_CANCELLED if cancelled else ''}"


def is_abandoned(note: str | None) -> bool:
    return bool(note and note.startswith(ABANDON_NOTE))


def waits_for_cancel(note: str | None) -> bool:
    """Abandoned with --cancel: the job ends once its cancelled batches ended and were collected."""
    return is_abandoned(note) and _CANCELLED in str(note)


def sends_nothing_more(job: Job) -> bool:
    """Cancelled or abandoned: nothing of the job is submitted or resubmitted any more."""
    return job.cancel_requested or is_abandoned(job.note)


def cancel_stands(job: Job) -> bool:
    """Cancelled, and not abandoned since: an abandonment takes the job's ending over."""
    return job.cancel_requested and not is_abandoned(job.note)


def early_ending(job: Job, parts: list[Part]) -> Ending | None:
    """The ending of a job that was abandoned or lost a batch; None for any other job."""
    name = job.source_name
    kept = f"Results that were collected are kept in {job.result_dir}."
    if is_abandoned(job.note):
        lines = [_line(p) for p in parts if p.batch_status == ABANDONED_STATUS]
        advice = (
            f"{kept} Nothing more is sent for this input. `batchd retry {name}` sends all of it again as a new "
            "job; requests that already ran would run, and be paid for, again."
        )
        return Ending(str(job.note), lines, advice, "job_abandoned")
    lost = [p for p in parts if p.batch_status == LOST_STATUS]
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
    return f"{head}{batch}: {part.last_error or part.batch_status}"
