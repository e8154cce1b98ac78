"""Telling which lost part a batch is, on a service whose batches carry nothing of ours.

Anthropic's Message Batches have no metadata and no input file: after a lost state database, the
only things that tie a listed batch to a part file left in state/ are its request count, its
creation time and, once it has ended, the custom_ids its results name (a pack's with the slot
prefixes its part file holds). ``batchd recover`` matches all lost parts of one profile with all
batches its service lists, together, by these rules:

- A batch is a *candidate* of a part when it holds as many requests as the part and was created
  after the part's job was claimed (less the clock skew), and no recorded part holds it already.
- An ended candidate whose results name exactly the part's custom_ids *fits* the part. A part with
  exactly one fitting batch, which fits no other lost part, is *adopted*: its results are collected.
- Two lost parts with the same custom_ids (e.g. ``q-0``, ``q-1`` in two inputs) and counts may both
  fit the same batches: which is whose cannot be told, so both are *held* (left where they are,
  with the reason), never guessed: a swap would give one input the other's answers.
- An ended candidate whose results name some of the part's custom_ids but not exactly them (a
  download damaged on the way), or whose results are gone (kept 29 days), may be the part's: the
  part is held (``batchd recover`` again decides once the results can be read).
- A running candidate has no results yet: the part *awaits* it. It is recorded as a create whose
  reply was lost (state ``batch_intent``), and the daemon's own reconciliation (service/
  candidate_batches.py) waits for every candidate to end, adopts the one whose results name the
  part's custom_ids, and creates a batch only once none could be the part's. So a running batch
  is polled to its end and collected, and a stranger's running batch of the same count (another
  program on the account) is never taken for ours, nor lets the part be sent twice meanwhile.
  When another lost part with the same custom_ids and count shares such a candidate, that end
  could not tell them apart either: both are held.
- A part with no candidate at all was never sent: *unsent* (an input all of whose parts are goes
  back to pending_upload/; others are submitted by the daemon).

Nothing here creates anything on the service; the results of ended candidates are downloaded into
a scratch folder only to read their custom_ids, and deleted.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from daemon.errors import NotFoundError
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_search import CLOCK_SKEW
from daemon.service.batch_service import BatchService
from daemon.service.candidate_batches import could_hold, result_ids
from daemon.state.states import TERMINAL_BATCH_STATUSES

Key = tuple[str, int, int]  # (job or pack id, segment, attempt)
IdsOf = Callable[[BatchInfo], frozenset[str] | None]  # an ended batch's results' custom_ids; None: gone


class Verdict(Enum):
    ADOPTED = "adopted"  # its one fitting batch, ended: collected
    AWAITS = "awaits"  # running candidates may be it: the daemon decides once they end
    UNSENT = "unsent"  # no batch could be it
    HELD = "held"  # which batch is its cannot be told: left, with the reason


@dataclass(frozen=True, slots=True)
class LostPart:
    """A part file of a job the state lost: what a batch made from it must hold."""

    key: Key
    count: int
    ids: frozenset[str]
    claimed_at: float  # when its job (or pack) was made: no batch of it is older


@dataclass(slots=True)
class Finding:
    verdict: Verdict
    batch: BatchInfo | None = None  # the adopted one
    awaited: list[str] = field(default_factory=list)  # running candidates' ids
    why: str = ""


@dataclass(slots=True)
class _Candidates:
    fitting: list[BatchInfo] = field(default_factory=list)
    running: list[BatchInfo] = field(default_factory=list)
    unsure: list[BatchInfo] = field(default_factory=list)


def match_parts(parts: list[LostPart], batches: list[BatchInfo], ids_of: IdsOf) -> dict[Key, Finding]:
    """Each lost part's finding, by the rules of the module docstring; ``batches`` are the
    service's batches no recorded part holds."""
    found = {part.key: _candidates(part, batches, ids_of) for part in parts}
    fits = Counter(b.id for c in found.values() for b in c.fitting)
    findings: dict[Key, Finding] = {}
    for part in parts:
        findings[part.key] = _judge(part, found[part.key], fits)
    for part in parts:  # twins: same ids and count, sharing a running candidate
        finding = findings[part.key]
        twins = [
            other.key
            for other in parts
            if other.key != part.key
            and findings[other.key].verdict in (Verdict.AWAITS, Verdict.HELD)
            and (other.ids, other.count) == (part.ids, part.count)
            and set(finding.awaited) & {b.id for b in found[other.key].running}
        ]
        if finding.verdict is Verdict.AWAITS and twins:
            findings[part.key] = Finding(Verdict.HELD, why=_twins_why(finding.awaited, twins))
    return findings


def _candidates(part: LostPart, batches: list[BatchInfo], ids_of: IdsOf) -> _Candidates:
    found = _Candidates()
    for batch in sorted(batches, key=lambda b: (b.created_at, b.id)):
        if not could_hold(batch, part.count, part.claimed_at):
            continue
        if batch.status not in TERMINAL_BATCH_STATUSES:
            found.running.append(batch)
            continue
        ids = ids_of(batch)
        if ids == part.ids:
            found.fitting.append(batch)
        elif ids is None or ids & part.ids:
            found.unsure.append(batch)
    return found


def _judge(part: LostPart, found: _Candidates, fits: Counter[str]) -> Finding:
    if len(found.fitting) == 1 and fits[found.fitting[0].id] == 1:
        return Finding(Verdict.ADOPTED, batch=found.fitting[0])
    if found.fitting:
        ids = ", ".join(b.id for b in found.fitting)
        return Finding(
            Verdict.HELD,
            why=f"the results of batch(es) {ids} name exactly its custom_ids, as they do another lost part's (or "
            "several batches do): which is whose cannot be told from the service. Read those results and move "
            "each input's results by hand; batchd will not guess (a swap would give one input the other's answers)",
        )
    if found.unsure:
        ids = ", ".join(b.id for b in found.unsure)
        return Finding(
            Verdict.HELD,
            why=f"ended batch(es) {ids} hold as many requests and results naming some of its custom_ids (or results "
            "that can no longer be read): one may be its. Run `batchd recover` again (a damaged download reads "
            "whole the next time); nothing is sent meanwhile",
        )
    if found.running:
        return Finding(Verdict.AWAITS, awaited=[b.id for b in found.running])
    return Finding(Verdict.UNSENT)


def _twins_why(awaited: list[str], twins: list[Key]) -> str:
    others = ", ".join(f"{job} part {seg}.{attempt}" for job, seg, attempt in twins)
    return (
        f"batch(es) {', '.join(awaited)} still run and may be its, but {others} has the same custom_ids and "
        "count, so even their results could not tell which is whose. Run `batchd recover` again once they ended; "
        "nothing is sent meanwhile"
    )


class BatchIds:
    """The custom_ids each ended batch's results name, downloaded once into a scratch folder and
    read; the download is deleted at once (only the ids are kept)."""

    def __init__(self, service_of: Callable[[BatchInfo], BatchService], scratch_parent: Path) -> None:
        self.service_of = service_of
        self.scratch_parent = scratch_parent
        self._known: dict[str, frozenset[str] | None] = {}

    def __call__(self, batch: BatchInfo) -> frozenset[str] | None:
        if batch.id not in self._known:
            self._known[batch.id] = self._read(batch)
        return self._known[batch.id]

    def _read(self, batch: BatchInfo) -> frozenset[str] | None:
        if batch.output_file_id is None:
            return None
        with tempfile.TemporaryDirectory(dir=self.scratch_parent, prefix=".recover-") as scratch:
            download = Path(scratch) / f"{batch.id}.jsonl"
            try:
                self.service_of(batch).download(batch.output_file_id, download)
            except NotFoundError:  # its results are gone: whose it was cannot be told
                return None
            try:
                return frozenset(result_ids(download))
            finally:
                with contextlib.suppress(FileNotFoundError):
                    download.unlink()


def partial_holders(part: LostPart, batches: list[BatchInfo], ids_of: IdsOf) -> list[str]:
    """Batches that may hold some, not all, of the requests of an input with no part files, which
    other limits may have split (settings changed, or its part files deleted): a smaller running one
    made since it was claimed, or a smaller ended one whose results name some of its custom_ids. One
    such keeps it from being sent again (a re-run of requests that ran)."""
    found: list[str] = []
    for batch in batches:
        counts = batch.request_counts
        if counts is None or not 0 < counts.total < part.count or batch.created_at < part.claimed_at - CLOCK_SKEW:
            continue
        if batch.status not in TERMINAL_BATCH_STATUSES:
            found.append(batch.id)
            continue
        ids = ids_of(batch)
        if ids is None or ids & part.ids:
            found.append(batch.id)
    return found
