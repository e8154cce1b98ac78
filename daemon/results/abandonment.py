"""The daemon's side of ``batchd abandon`` (the command is cli/abandon.py): end the jobs an operator
abandoned, keeping what was collected.

The command records the request on the job (``abandon_requested_at``, ``abandon_after_cancel``; see
state/job_endings.py). A running daemon ends such a job at its next pass, once no step is under way
on it (and, after ``--cancel``, once its cancelled batches have ended and were collected): its
unfinished parts end with the outcome ``abandoned`` and the collector finishes the job, which ends
as FAILED with a report.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from daemon.results.collector import Collector
from daemon.state.rows import Part
from daemon.state.states import TERMINAL_JOB_STATES, JobState, PartOutcome, PartState
from daemon.state.store import Store

_DONE = frozenset({PartState.DOWNLOADED, PartState.SUPERSEDED})
_COLLECTING = frozenset({PartState.SUBMITTED, PartState.FINISHED})  # a cancelled batch still to collect


class Abandonment:
    """The daemon's side: ends the jobs an operator abandoned, one pass at a time."""

    def __init__(self, store: Store, collector: Collector, busy: Callable[[Hashable], bool]) -> None:
        self.store = store
        self.collector = collector
        self.busy = busy  # whether a worker runs (or has queued) a step with this key

    def due(self) -> list[str]:
        return self.store.open_abandoned_job_ids()

    def end(self, job_id: str) -> None:
        """End the job unless a step is under way on it (then the next pass tries again)."""
        job = self.store.job(job_id)
        if job.state in TERMINAL_JOB_STATES or not job.abandoned:
            return
        parts = self.store.parts(job_id)
        if job.state not in (JobState.ACTIVE, JobState.COLLECTING) or any(self._under_way(p) for p in parts):
            return
        if job.abandon_after_cancel and any(p.state in _COLLECTING for p in parts):
            return
        with self.store.transaction():
            for part in parts:
                if part.state not in _DONE:
                    self.store.update_part(
                        part.id,
                        state=PartState.DOWNLOADED,
                        outcome=PartOutcome.ABANDONED,
                        last_error=_left(part),
                        next_action_at=0,
                    )
        self.collector.finish_job(job_id)

    def _under_way(self, part: Part) -> bool:
        if part.state == PartState.WAITING and self.busy(("packer",)):
            return True
        return self.busy(("part", part.id))


def _left(part: Part) -> str:
    if part.batch_id and part.state in _COLLECTING:
        return f"abandoned while batch {part.batch_id} was {part.batch_status}; it was not cancelled by batchd"
    if part.state == PartState.PACKED:
        return f"abandoned while its requests were in shared batch(es) of pack {part.pack_id}, which run on"
    if part.state in (PartState.UPLOAD_INTENT, PartState.BATCH_INTENT):
        return (
            f"abandoned while it was being submitted ({part.state}): a file or batch may exist on the service "
            f"with metadata batchd_job={part.job_id}, batchd_part={part.label}"
        )
    return f"abandoned before it was submitted (it was {part.state})"
