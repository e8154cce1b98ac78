"""Job, part and batch states, and which state may follow which. Dependency-free so every module
(and the state file) can use them. The store refuses a move the tables below do not list; the
diagram in docs/states.md is drawn from them (``mermaid``)."""

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar


class JobState(StrEnum):
    CLAIMING = "claiming"  # row written, rename out of the drop zone not yet confirmed
    CLAIMED = "claimed"  # input moved into state/inflight, not yet validated
    ACTIVE = "active"  # validated and split into parts; parts are being submitted or tracked
    COLLECTING = "collecting"  # every part finished; results are being merged
    DONE = "done"  # results written, input archived in uploaded_files/
    FAILED = "failed"  # the service rejected a batch for good; input in failed/ with a report
    REJECTED = "rejected"  # invalid input; moved to failed/ with a report before any upload


class PartState(StrEnum):
    WAITING = "waiting"  # a small input's only part, waiting a moment to share a batch with others
    PACKED = "packed"  # its requests travel in a pack's shared batch; the pack hands back its results
    READY = "ready"  # part file written, nothing sent yet
    UPLOAD_INTENT = "upload_intent"  # files.create may have been sent; reconcile before retrying
    UPLOADED = "uploaded"  # file_id known
    BATCH_INTENT = "batch_intent"  # batches.create may have been sent; reconcile before retrying
    SUBMITTED = "submitted"  # batch_id known; being polled
    FINISHED = "finished"  # batch reached a terminal status; outputs not yet downloaded
    DOWNLOADED = "downloaded"  # outputs (if any) are on disk in the job's results folder
    SUPERSEDED = "superseded"  # its unfinished requests went into a newer part of the same segment


# Which state may follow which: every state a step writes, taken from the code that writes it.
# Writing a row's own state again is always allowed: a restart re-runs the step that crashed.
# Rows that recovery rebuilds or the seed import writes are added in whatever state they are found.
JOB_MOVES: Mapping[JobState, frozenset[JobState]] = {
    JobState.CLAIMING: frozenset({JobState.CLAIMED}),  # intake/claim.py (or the row is deleted)
    JobState.CLAIMED: frozenset(
        {
            JobState.ACTIVE,  # intake/preparer.py: checked and split
            JobState.REJECTED,  # intake/preparer.py: invalid input
            JobState.FAILED,  # intake/quarantine.py: its check kept failing
        }
    ),
    JobState.ACTIVE: frozenset(
        {
            JobState.COLLECTING,  # results/collector.py: every part done
            JobState.FAILED,  # intake/quarantine.py: set aside, or a held input changed
        }
    ),
    JobState.COLLECTING: frozenset(
        {
            JobState.DONE,  # results/collector.py, results/unpacker.py
            JobState.FAILED,  # results/collector.py (refused, abandoned, changed), unpacker.py, quarantine.py
        }
    ),
    JobState.DONE: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.REJECTED: frozenset(),
}
_ENDED = PartState.DOWNLOADED  # abandonment, quarantine and a lost batch end a part from any open state
PART_MOVES: Mapping[PartState, frozenset[PartState]] = {
    PartState.WAITING: frozenset({PartState.PACKED, PartState.READY, _ENDED}),  # intake/packer.py
    PartState.PACKED: frozenset({PartState.READY, _ENDED}),  # results/unpacker.py, intake/quarantine.py
    # service/submitter.py: the intent; FINISHED when cancelled or refused; intake/refitter.py: SUPERSEDED
    PartState.READY: frozenset({PartState.UPLOAD_INTENT, PartState.FINISHED, PartState.SUPERSEDED, _ENDED}),
    # service/submitter.py: recorded, undone (READY) or refused
    PartState.UPLOAD_INTENT: frozenset({PartState.UPLOADED, PartState.READY, PartState.FINISHED, _ENDED}),
    PartState.UPLOADED: frozenset({PartState.BATCH_INTENT, PartState.FINISHED, PartState.SUPERSEDED, _ENDED}),
    PartState.BATCH_INTENT: frozenset({PartState.SUBMITTED, PartState.UPLOADED, PartState.FINISHED, _ENDED}),
    PartState.SUBMITTED: frozenset({PartState.FINISHED, _ENDED}),  # service/poller.py, service/lost_batches.py
    # results/collector.py: collected, requeued when the model's queue was full, or resubmitted
    PartState.FINISHED: frozenset({_ENDED, PartState.UPLOADED, PartState.SUPERSEDED}),
    PartState.DOWNLOADED: frozenset(),
    PartState.SUPERSEDED: frozenset(),
}
# Where rows start in normal work (the diagram's entry arrows): a claimed input, a pack or an import;
# a checked input's parts, a refitted part's pieces (DOWNLOADED: a request that can never fit).
JOB_STARTS = (JobState.CLAIMING, JobState.ACTIVE)
PART_STARTS = (PartState.WAITING, PartState.READY, PartState.DOWNLOADED)


class ForbiddenMoveError(ValueError):
    """A step tried to move a job or part to a state the tables do not allow after its own."""


def check_job_move(job_id: str, now: JobState, to: JobState) -> None:
    if to != now and to not in JOB_MOVES[now]:
        raise ForbiddenMoveError(f"job {job_id} may not move from {now} to {to}")


def check_part_move(part_id: int, job_id: str, now: PartState, to: PartState) -> None:
    if to != now and to not in PART_MOVES[now]:
        raise ForbiddenMoveError(f"part {part_id} of job {job_id} may not move from {now} to {to}")


# jobs.kind: an input the user dropped, or a pack carrying several small inputs in one batch.
INPUT_KIND = "input"
PACK_KIND = "pack"

TERMINAL_JOB_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.REJECTED})
OPEN_JOB_STATES = frozenset(JobState) - TERMINAL_JOB_STATES

# The Batch API's statuses. Anything else the service sends is "unknown" and simply polled again.
TERMINAL_BATCH_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
ACTIVE_BATCH_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})

# A batch status the service sends for a batch it failed at validation: nothing of it ran.
FAILED_BATCH_STATUS = "failed"


class PartOutcome(StrEnum):
    """How batchd itself ended a part that has no batch the service finished (parts.outcome; None
    for every other part). The service's status stays in batch_status, only ever as it said it."""

    REFUSED = "refused"  # a 4xx to its upload or batch create, or over the model's token limit: nothing ran
    LOST = "lost"  # the service no longer knows its batch (service/lost_batches.py)
    ABANDONED = "abandoned"  # the operator abandoned its job (results/abandonment.py)
    CANCELLED = "cancelled"  # `batchd cancel` came before it had a batch (service/submitter.py)


# The word reports, results.jsonl and `batchd status` show for such a part where a batch status would
# be (as before the outcome had a column of its own: results' error codes and summaries are unchanged).
OUTCOME_WORDS: Mapping[PartOutcome, str] = {
    PartOutcome.REFUSED: "rejected",
    PartOutcome.LOST: "lost",
    PartOutcome.ABANDONED: "abandoned",
    PartOutcome.CANCELLED: "cancelled",
}


class PartOrigin(StrEnum):
    """Where a part's requests are (parts.origin), recorded when the part is written."""

    OWN_FILE = "own_file"  # a part file batchd wrote: a split input, a resubmission, a refitted piece
    HELD_INPUT = "held_input"  # a small input held for a shared batch: its requests are the input's own lines
    PACK = "pack"  # a pack's shared part: its members' lines, custom_ids prefixed (its members: pack_id)
    IMPORTED = "imported"  # the seed script's batch; its file is a copy of the original input
    IMPORTED_WITHOUT_INPUT = "imported_without_input"  # the seed script's batch, its input not here


# A held input gets a part file of its own when it goes alone after all (intake/packer.py,
# quarantine.py, results/unpacker.py): the only change of origin there is.
ORIGIN_MOVES: Mapping[PartOrigin, frozenset[PartOrigin]] = {
    PartOrigin.OWN_FILE: frozenset(),
    PartOrigin.HELD_INPUT: frozenset({PartOrigin.OWN_FILE}),
    PartOrigin.PACK: frozenset(),
    PartOrigin.IMPORTED: frozenset(),
    PartOrigin.IMPORTED_WITHOUT_INPUT: frozenset(),
}


def check_origin_move(part_id: int, now: PartOrigin, to: PartOrigin) -> None:
    if to != now and to not in ORIGIN_MOVES[now]:
        raise ForbiddenMoveError(f"part {part_id} may not change its origin from {now} to {to}")


def mermaid() -> str:
    """The tables as Mermaid state diagrams, in the order the states are declared."""
    diagrams = [
        _diagram("jobs", JOB_STARTS, JOB_MOVES),
        _diagram("parts", PART_STARTS, PART_MOVES),
        _diagram("part origins", tuple(ORIGIN_MOVES), ORIGIN_MOVES),
    ]
    return "\n".join(diagrams)


_S = TypeVar("_S", JobState, PartState, PartOrigin)


def _diagram(title: str, starts: tuple[_S, ...], moves: Mapping[_S, frozenset[_S]]) -> str:
    lines: list[str] = [f"### {title}", "", "```mermaid", "stateDiagram-v2"]
    lines += [f"    [*] --> {state}" for state in starts]
    order = list(moves)
    for state, after in moves.items():
        lines += [f"    {state} --> {to}" for to in sorted(after, key=order.index)]
        if not after:
            lines.append(f"    {state} --> [*]")
    return "\n".join([*lines, "```", ""])
