"""Finding the batch a lost create may have made on a service whose batches carry nothing of ours.

A Message Batch has no metadata and no input file (its requests came in the create call), so the
batch a lost reply made can only be told by what it holds. The candidates are the batches listed
since the intent (less the clock skew) with as many requests as the part, that no other part of
ours already holds and that this part did not have before. A candidate is ours once its results
name exactly the part's custom_ids, which can only be read once it has ended. So:

- an ended candidate whose results hold the part's custom_ids is adopted;
- while any candidate is still running, or has results naming some of the part's custom_ids but
  not exactly them (a download damaged on the way), it could be ours: nothing is created (that
  could pay twice), and the part is looked at again later (``CandidatesPendingError``);
- with no candidate left that could be ours, the batch is created.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path

import orjson

from daemon.errors import NotFoundError, TransientError
from daemon.intake.validation import iter_lines
from daemon.logs import get_logger
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_search import CLOCK_SKEW
from daemon.service.batch_service import BatchService
from daemon.state.rows import Part
from daemon.state.states import TERMINAL_BATCH_STATUSES
from daemon.state.store import Store

log = get_logger(__name__)


class CandidatesPendingError(TransientError):
    """A batch that may be this part's is still running: whether it is ours is known once it ends."""

    def __init__(self, part: Part, batch_ids: list[str], wait: float) -> None:
        super().__init__(
            f"the reply to creating the batch of part {part.label} was lost; batch(es) {', '.join(batch_ids)} "
            "may be it (still running, or results naming some of its requests), so no other is created "
            "(that could be paid twice); whether one is ours is known from its results once it ends",
            retry_after=wait,
        )


def own_batch(remote: BatchService, store: Store, part: Part, scratch: Path, wait: float) -> BatchInfo | None:
    """The batch the part's lost create made, or None if there is none (create it); raises
    ``CandidatesPendingError`` (look again in ``wait`` seconds at the soonest, as a batch is polled)
    while one that may be it is undecided."""
    undecided: list[str] = []
    for batch in candidates(remote, store, part):
        if batch.status not in TERMINAL_BATCH_STATUSES:
            undecided.append(batch.id)
            continue
        match = requests_match(remote, batch, Path(part.path), scratch) if batch.output_file_id else Match.NONE
        if match is Match.SAME:
            log.info("lost_batch_confirmed", job_id=part.job_id, part=part.label, batch_id=batch.id)
            return batch
        if match is Match.SOME:  # a damaged download of ours, or a stranger sharing ids: looked at again later
            log.warning("lost_batch_unconfirmed", job_id=part.job_id, part=part.label, batch_id=batch.id)
            undecided.append(batch.id)
    if undecided:
        raise CandidatesPendingError(part, undecided, wait)
    return None


def candidates(remote: BatchService, store: Store, part: Part) -> list[BatchInfo]:
    """Batches since the part's intent with its request count that no other part holds, oldest first."""
    since = part.intent_at or 0.0
    earlier = set(filter(None, (part.old_batch_ids or "").split(",")))
    found = [
        batch
        for batch in remote.batches_since(since)
        if could_hold(batch, part.request_count, since)
        and batch.id not in earlier
        and store.part_by_batch(batch.id) is None
    ]
    return sorted(found, key=lambda b: (b.created_at, b.id))


def could_hold(batch: BatchInfo, count: int, since: float) -> bool:
    """Whether ``batch`` could have been made from ``count`` requests at ``since`` or later (less the
    clock skew): the rule a batch with nothing of ours must pass to be a candidate."""
    counts = batch.request_counts
    return counts is not None and counts.total == count and batch.created_at >= since - CLOCK_SKEW


class Match(Enum):
    SAME = "same"  # the results name exactly the part's custom_ids: the part's batch
    SOME = "some"  # some of them: results damaged on the way (or another's batch sharing ids)
    NONE = "none"  # none of them: not the part's


def requests_match(remote: BatchService, batch: BatchInfo, requests: Path, scratch: Path) -> Match:
    """How the ended ``batch``'s results' custom_ids compare with those of the ``requests`` file."""
    assert batch.output_file_id is not None
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    download = scratch / f".candidate-{batch.id}.jsonl"
    try:
        try:
            remote.download(batch.output_file_id, download)
        except NotFoundError:  # its results are gone (kept 29 days): whose it was cannot be told
            return Match.SOME
        found, wanted = result_ids(download), result_ids(requests)
        return Match.SAME if found == wanted else Match.SOME if found & wanted else Match.NONE
    finally:
        with contextlib.suppress(FileNotFoundError):
            download.unlink()


def result_ids(path: Path) -> set[str]:
    """The custom_ids a results (or requests) file names; a line that is not JSON is passed over."""
    ids: set[str] = set()
    with open(path, "rb") as fh:
        for _, raw in iter_lines(fh):
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            custom_id = line.get("custom_id") if isinstance(line, dict) else None
            if isinstance(custom_id, str):
                ids.add(custom_id)
    return ids
