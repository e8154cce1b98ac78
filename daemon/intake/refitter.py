"""Refitting: a part too big for its model's enqueued-token limit is split into parts that fit.

The service refuses a batch whose input tokens, with those already queued for the model, exceed
the account's enqueued-token limit (token_limit_exceeded), and names the limit in its message
(holds.learned_limit). A part bigger than that limit would be refused for ever, so its requests go
into new parts of the same segment, each within the limit less a margin (the estimate is a rule of
thumb), and the part is superseded. Input order survives: the merge takes a segment's order from
its first part file and finds each request in any of the segment's downloads. Nothing of the old
part ran (its batch was refused whole, or never created), so each request is sent once more.

A request that alone is over a limit the service has just reported cannot fit any batch: it gets a
part of its own, recorded as refused with a reason naming its line, the limit and the model. The
rest of the input still runs, and the job then ends in failed/ with that reason in its report.
Where the limit is only remembered (the account's limit may have been raised since), such a
request is sent alone and the service decides. A pack too big for the limit is not cut: it is
given up, so its inputs go in batches of their own (see unpacker), each fitted by itself.

The estimate can also be low (dense text has more tokens than a quarter of its bytes): a part
refused again while nothing else of its model was queued is halved (``halve``), again if need be.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import orjson

from daemon.config import Settings
from daemon.intake.validation import iter_lines, iter_normalised, normalise
from daemon.logs import get_logger
from daemon.state.fileops import atomic_writer
from daemon.state.folders import PARTS
from daemon.state.rows import Job, Part, part_model
from daemon.state.states import INPUT_KIND, PACK_KIND, PartOutcome, PartState
from daemon.state.store import Store

log = get_logger(__name__)
# Parts are cut to this share of the learned limit: the estimate (a quarter of a line's bytes) is
# only a rule of thumb, and the service counts its own way.
TOKEN_MARGIN = 0.9
# New parts of a segment (refitted ones, or an expired batch's unfinished requests) take the next
# free attempt number, and the latter name their file after it: parts of one segment that end
# together would otherwise take the same number (and write the same file).
NEW_PARTS = threading.Lock()


class Verdict(Enum):
    FITS = "fits"  # within the budget, or nothing to gain by cutting: send it as it is
    SPLIT = "split"  # superseded by new parts of the same segment
    REFUSED = "refused"  # a pack over the limit: given up, so its inputs go alone


@dataclass(slots=True)
class Piece:
    """One new part: a run of the old part's requests."""

    path: Path
    first_id: str
    requests: int = 0
    size: int = 0
    est_tokens: int = 0
    alone: bool = False  # one request over the budget by itself


def token_budget(limit: int) -> int:
    return max(1, int(limit * TOKEN_MARGIN))


def next_attempt(parts: list[Part], segment: int) -> int:
    """The first attempt number no part of ``segment`` uses yet."""
    return 1 + max((p.attempt for p in parts if p.segment == segment), default=-1)


def over_limit_reason(line: int, custom_id: str, est_tokens: int, limit: int, model: str) -> str:
    return (
        f"line {line} (custom_id {custom_id!r}) is estimated at {est_tokens:,} tokens by itself, over the "
        f"{limit:,} enqueued-token limit the service reported for model {model}, so no batch can carry it. "
        f"Shorten or remove that request, or raise the account's enqueued-token limit for {model}. "
        f"Setting max_tokens_per_batch (at most {limit:,}) makes batchd split inputs to fit before sending."
    )


class Refitter:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def refit(self, part: Part, job: Job, limit: int, *, reported: bool) -> Verdict:
        """Split ``part`` if the model's ``limit`` cannot take it. ``reported``: the service named the
        limit in refusing this very part (else it is remembered and may be out of date)."""
        budget = token_budget(limit)
        if part.imported_without_input or part.est_tokens <= budget:  # no file to cut
            return Verdict.FITS
        if job.kind == PACK_KIND:
            self._give_up_pack(part, job, f"estimated at {part.est_tokens:,} tokens, over", limit, reported=reported)
            return Verdict.REFUSED
        if part.request_count == 1 and not reported:
            return Verdict.FITS
        return self._split(part, job, limit, budget, refuse_alone=reported)

    def halve(self, part: Part, job: Job, limit: int) -> Verdict:
        """``part`` was refused again though nothing else of its model was queued and its estimate fits: the
        service counts it bigger (dense text has more tokens than a quarter of its bytes). Halve it;
        if the halves are refused alone too, they are halved again."""
        if part.imported_without_input or part.request_count < 2:
            return Verdict.FITS
        if job.kind == PACK_KIND:
            self._give_up_pack(part, job, "refused alone by", limit, reported=True)
            return Verdict.REFUSED
        return self._split(part, job, limit, max(1, (part.est_tokens + 1) // 2), refuse_alone=False)

    def _split(self, part: Part, job: Job, limit: int, budget: int, *, refuse_alone: bool) -> Verdict:
        pieces = self._cut(part, job, budget)
        if len(pieces) < 2 and not (refuse_alone and pieces[0].alone):
            return Verdict.FITS  # the estimate of the whole was off; its lines fit as one
        self._write(Path(part.path), pieces)
        lines = input_lines(job, {p.first_id for p in pieces})
        children = self._children(part, job, limit, pieces, lines, refuse_alone=refuse_alone)
        with NEW_PARTS, self.store.transaction():  # the new parts and the old one's end land together
            first = next_attempt(self.store.parts(job.id), part.segment)
            for n, child in enumerate(children):
                child.attempt = first + n
                self.store.add_part(child)
            self.store.update_part(part.id, state=PartState.SUPERSEDED, next_action_at=0)
        _log_split(part, job, limit, budget, children)
        return Verdict.SPLIT

    def _cut(self, part: Part, job: Job, budget: int) -> list[Piece]:
        """Where the new parts begin: a greedy run of requests up to ``budget``, in order."""
        folder = self._folder(part, job)
        pieces: list[Piece] = []
        with open(part.path, "rb") as src:
            for data in iter_normalised(src):
                est = max(1, len(data) // 4)  # as validation estimates a request
                alone = est > budget
                last = pieces[-1] if pieces else None
                if last is None or alone or last.alone or last.est_tokens + est > budget:
                    name = f"{part.segment}.{part.attempt}.fit{len(pieces)}.jsonl"
                    last = Piece(folder / name, str(orjson.loads(data)["custom_id"]), alone=alone)
                    pieces.append(last)
                last.requests, last.size = last.requests + 1, last.size + len(data)
                last.est_tokens += est
        return pieces

    def _folder(self, part: Part, job: Job) -> Path:
        if part.holds_input:  # never for a part that is sent, but never write beside inputs
            return self.settings.state / PARTS / job.id
        return Path(part.path).parent

    def _write(self, source: Path, pieces: list[Piece]) -> None:
        """Each new part file, synced before any record points to it (names are fixed: a crash
        before the record only means they are written again)."""
        with open(source, "rb") as src:
            source_lines = iter_normalised(src)
            for piece in pieces:
                with atomic_writer(piece.path) as out:
                    for data in itertools.islice(source_lines, piece.requests):
                        out.write(data)

    def _children(
        self, part: Part, job: Job, limit: int, pieces: list[Piece], lines: dict[str, int], *, refuse_alone: bool
    ) -> list[Part]:
        """The new parts, attempts still to number. Refused requests come last: a segment's not-run
        lines name the status of its last part."""
        now = time.time()
        kept: list[Part] = []
        refused: list[Part] = []
        for piece in pieces:
            line = lines.get(piece.first_id, part.first_line)
            child = Part(
                job.id, part.segment, 0, str(piece.path), line, piece.requests, piece.size, piece.est_tokens,
                PartState.READY, now, now, model=part.model,
            )  # fmt: skip
            if refuse_alone and piece.alone:
                child.state, child.outcome = PartState.DOWNLOADED, PartOutcome.REFUSED
                model = part_model(part, job) or ""  # the part's own, if its input named several
                child.last_error = over_limit_reason(line, piece.first_id, piece.est_tokens, limit, model)
            (refused if child.outcome else kept).append(child)
        return kept + refused

    def _give_up_pack(self, part: Part, job: Job, why: str, limit: int, *, reported: bool) -> None:
        reason = f"the pack was {why} the {limit:,} enqueued-token limit for model {job.model}; its inputs go alone"
        if reported:  # its refused batch is collected as usual, and the unpacker sends its inputs alone
            self.store.update_part(part.id, last_error=reason)
        else:  # never sent: end it as refused, and the same happens
            self.store.update_part(
                part.id, state=PartState.FINISHED, outcome=PartOutcome.REFUSED, last_error=reason, next_action_at=0
            )
        log.warning("pack_given_up", pack_id=job.id, reason=reason, limit=limit, est_tokens=part.est_tokens)


def _log_split(part: Part, job: Job, limit: int, budget: int, children: list[Part]) -> None:
    refused = [c for c in children if c.outcome]
    log.warning(
        "part_refitted",
        job_id=job.id,
        part=part.label,
        parts=len(children) - len(refused),
        limit=limit,
        budget=budget,
        est_tokens=part.est_tokens,
    )
    for child in refused:  # one request each
        log.error(
            "request_refused",
            job_id=job.id,
            file=job.source_name,
            line=child.first_line,
            reason="over_token_limit",
            model=part_model(part, job),
            limit=limit,
        )


def input_lines(job: Job, custom_ids: set[str]) -> dict[str, int]:
    """custom_id -> its line in the job's input, for those asked; {} for a pack or a missing input.
    Only line numbers for people are read here, never a request to send."""
    if job.kind != INPUT_KIND or not job.inflight_path:
        return {}
    found: dict[str, int] = {}
    try:
        with open(job.inflight_path, "rb") as fh:
            for line_no, raw in iter_lines(fh):
                data = normalise(raw)
                custom_id = _custom_id(data) if data is not None else None
                if custom_id is not None and custom_id in custom_ids:
                    found[custom_id] = line_no
                    if len(found) == len(custom_ids):
                        break
    except OSError:
        return found
    return found


def _custom_id(data: bytes) -> str | None:
    try:
        value = orjson.loads(data).get("custom_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None
