"""Merge the results of a job's batches into one results.jsonl, in input order.

Output files come back in any order. Per segment (a run of input lines uploaded as one part, plus
any resubmissions of its unfinished requests), the downloaded lines are indexed by custom_id, by
byte offset only, and the segment's original part file gives the order. Memory stays bounded by
one segment's index (at most 50,000 entries), however big the input. An input split by model has
segments that are not runs of the input: each is merged apart, then interleaved (interleaver.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from daemon import crashpoints
from daemon.intake.line_reader import CEILING, LongLine, is_blank, read_lines
from daemon.intake.validation import iter_lines, iter_normalised
from daemon.results.anthropic_results import ANTHROPIC_FORM, absent_result
from daemon.results.body_form import copy_result_line
from daemon.results.outcome import FAILED, SUCCEEDED, missing_line, not_run_line, outcome_name, rank
from daemon.state.fileops import atomic_writer

RESULTS_NAME = "results.jsonl"
_CUT_OFF = frozenset({"expired", "cancelled"})  # batch statuses that leave requests unrun


@dataclass(slots=True)
class Segment:
    """One segment: its original part file and, oldest first, each attempt's downloads."""

    part_file: Path
    downloads: list[Path] = field(default_factory=list)
    last_status: str | None = None
    # Requests the batches' request_counts say ran (completed + failed); None when not known.
    ran_reported: int | None = None
    results_missing: bool = False  # its last batch's downloads were accepted without adding up
    # Name sent -> model the lines named (the profile's model map, undone where the service echoes it).
    model_names: dict[str, str] = field(default_factory=dict)
    # The shape of the lines written for requests without a result: the service's own (anthropic_results).
    result_form: str = "openai"
    model: str | None = None  # the model of its part, when its input was split by model (else None)


@dataclass(slots=True)
class Entry:
    rank: int
    file_no: int
    offset: int


def merge(segments: list[Segment], dest: Path, normalise_bodies: bool = False) -> Counter[str]:
    """Write ``dest`` with one line per input request, in input order; return counts by outcome.
    ``normalise_bodies``: a ``response.body`` sent as a JSON string is written as its object."""
    counts: Counter[str] = Counter()
    with atomic_writer(dest) as out:
        for segment in segments:
            _merge_segment(segment, out, counts, normalise_bodies)
    return counts


def merge_apart(segment: Segment, dest: Path, normalise_bodies: bool) -> Counter[str]:
    """Write ``dest`` with one line per request of ``segment`` alone, in its order; return counts by
    outcome. A scratch file, written again whole whenever a merge runs (so not synced)."""
    counts: Counter[str] = Counter()
    with open(dest, "wb") as out:
        _merge_segment(segment, out, counts, normalise_bodies)
    return counts


def _merge_segment(segment: Segment, out: IO[bytes], counts: Counter[str], normalise_bodies: bool) -> None:
    index = index_outputs(segment.downloads)
    never_ran = _all_ran_have_lines(segment, index)
    handles = [open(p, "rb") for p in segment.downloads]  # noqa: SIM115 - closed below
    try:
        with open(segment.part_file, "rb") as requests:
            for raw in iter_normalised(requests):
                custom_id = orjson.loads(raw)["custom_id"]
                entry = index.get(custom_id)
                if entry is None:
                    missing = missing_line(custom_id, segment.last_status) if segment.results_missing else None
                    absent = missing or not_run_line(custom_id, segment.last_status, never_ran)
                    if segment.result_form == ANTHROPIC_FORM:
                        absent = absent_result(absent)
                    line = orjson.dumps(absent) + b"\n"
                    counts["not_run"] += 1
                    out.write(line)
                else:
                    # a huge result is copied in chunks (a line to edit is read whole)
                    copy_result_line(handles[entry.file_no], entry.offset, out, normalise_bodies, segment.model_names)
                    counts[outcome_name(entry.rank)] += 1
                crashpoints.reach("merging")
    finally:
        for fh in handles:
            fh.close()


def _all_ran_have_lines(segment: Segment, index: dict[str, Entry]) -> bool:
    """Whether a request without a line provably never ran: as many of the segment's requests
    have a line that ran as the batches say ran. Only a cutoff (expiry, cancel) needs the proof."""
    if segment.ran_reported is None:
        return False
    if segment.last_status not in _CUT_OFF:
        return True
    with open(segment.part_file, "rb") as requests:
        ids = (orjson.loads(raw)["custom_id"] for raw in iter_normalised(requests))
        seen = sum(1 for custom_id in ids if (entry := index.get(custom_id)) and entry.rank >= FAILED)
    return segment.ran_reported <= seen


def index_outputs(downloads: list[Path]) -> dict[str, Entry]:
    """custom_id -> best line; later attempts win ties, so the newest outcome is kept."""
    index: dict[str, Entry] = {}
    for file_no, path in enumerate(downloads):
        with open(path, "rb") as fh:
            offset = 0
            for _, raw in read_lines(fh, CEILING):
                if isinstance(raw, LongLine):  # too big to parse: kept in the raw file, like a mangled line
                    offset += raw.size
                    continue
                _add(index, raw, file_no, offset)
                offset += len(raw)
    return index


def _add(index: dict[str, Entry], raw: bytes, file_no: int, offset: int) -> None:
    if is_blank(raw):
        return
    try:
        line: Any = orjson.loads(raw)
        custom_id = line["custom_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return  # a line the service mangled cannot be matched to a request; it stays in the raw file
    line_rank = rank(line)
    known = index.get(custom_id)
    if known is None or (line_rank >= known.rank and known.rank != SUCCEEDED):
        index[custom_id] = Entry(line_rank, file_no, offset)


def write_output_order(downloads: list[Path], dest: Path) -> None:
    """A stand-in request file for an imported batch without its input: the ids in output order."""
    seen: set[str] = set()
    with atomic_writer(dest) as out:
        for path in downloads:
            with open(path, "rb") as fh:
                for _, raw in iter_lines(fh):
                    custom_id = custom_id_of(raw)
                    if custom_id is not None and custom_id not in seen:
                        seen.add(custom_id)
                        out.write(orjson.dumps({"custom_id": custom_id}) + b"\n")


def custom_id_of(raw: bytes) -> str | None:
    """The line's custom_id, if it is a JSON object with a string one."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = line.get("custom_id") if isinstance(line, dict) else None
    return value if isinstance(value, str) else None


def ids_at(part_file: Path, line_numbers: set[int]) -> dict[int, str]:
    """The custom_ids at these 1-based line numbers of an uploaded part file (its request lines as
    sent): a refused line named as the user knows it, since the service counts lines of the batch,
    not of the input. A line or file not there is left out."""
    found: dict[int, str] = {}
    if not line_numbers:
        return found
    try:
        with open(part_file, "rb") as fh:
            for number, raw in enumerate(iter_normalised(fh), start=1):
                if number in line_numbers and (custom_id := custom_id_of(raw)) is not None:
                    found[number] = custom_id
                if number >= max(line_numbers):
                    break
    except OSError:
        pass
    return found
