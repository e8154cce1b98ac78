"""Split a validated input into part files, each within the per-batch limits, in one pass.

Parts are written as the lines are checked, so even a multi-gigabyte input is read once and never
held in memory (only a small input's one part may be held, up to HOLD_BYTES, see split_lines). If the
input turns out to be invalid the part files are removed again. Each part file holds normalised lines
(LF endings, no blank lines): exactly what was validated is uploaded.

An input naming several models (``split_by_model``) is split in lanes, one per model: each request
goes to its model's open part, and a full part starts that model's next one. Parts are numbered in
the order they are started, and the routes file (intake/routes.py) records each request's lane, so
the results can be put back in input order. Such an input is never held in memory.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from daemon.intake.line_formats import line_checker
from daemon.intake.routes import routes_path
from daemon.intake.validation import (
    BatchLimits,
    Findings,
    LineSource,
    Request,
    iter_normalised,
    iter_requests,
)
from daemon.state.fileops import atomic_writer, write_atomic

# The most a held part may take in memory; a bigger input gets its part file. Small on purpose: each
# worker may hold a whole chunk of inputs at once (50 x 64 KiB = 3.2 MiB at most, see engine).
HOLD_BYTES = 64 << 10


@dataclass(slots=True)
class PartFile:
    path: Path
    first_line: int
    request_count: int = 0
    byte_size: int = 0
    embedding_inputs: int = 0
    est_tokens: int = 0
    model: str | None = None  # the model its lines name

    def fits(self, request: Request, batch_limits: BatchLimits) -> bool:
        return (
            self.request_count + 1 <= batch_limits.max_requests
            and self.byte_size + len(request.data) <= batch_limits.max_bytes
            and self.embedding_inputs + request.embedding_inputs <= batch_limits.max_embedding_inputs
            and self._tokens_fit(request, batch_limits.max_tokens)
        )

    def _tokens_fit(self, request: Request, budget: int | None) -> bool:
        # A request whose estimate alone is over the budget is not a problem with the file: it goes
        # alone into a part of its own (it starts a new part, and the next request starts another), so
        # it is never dropped or split around, and the rest of the split is unaffected. The estimate is
        # a rule of thumb (a quarter of the line's bytes), so refusing the whole file on it could refuse
        # work the service accepts; as with holds.model_wait, only the service knows for sure.
        return budget is None or self.request_count == 0 or self.est_tokens + request.est_tokens <= budget

    def add(self, request: Request) -> None:
        self.request_count += 1
        self.byte_size += len(request.data)
        self.embedding_inputs += request.embedding_inputs
        self.est_tokens += request.est_tokens


@dataclass(slots=True)
class Split:
    findings: Findings
    parts: list[PartFile] = field(default_factory=list)
    # The one part of a small input, kept in memory instead of written (see split_lines's ``hold``).
    held: bytes | None = None
    routes: Path | None = None  # each request's lane, for an input naming several models (routes.py)


def split_lines(source: LineSource, dest_dir: Path, batch_limits: BatchLimits, hold: int = 0) -> Split:
    """Validate ``source``'s lines and write its parts as ``dest_dir/<n>.jsonl``; no parts if invalid.

    An input of at most ``hold`` requests and HOLD_BYTES that fits one part is not written at all:
    its normalised lines come back in ``Split.held``. A small input packed with others needs no
    part file (the pack reads the input itself), which spares a burst of them a synced write each.
    """
    checker = line_checker(batch_limits)
    split = Split(checker.findings)
    lanes = Lanes(split, dest_dir, hold)
    try:
        for request in iter_requests(source, checker):
            if checker.findings.problem_count:
                continue  # keep checking to report every problem, but stop writing
            lanes.write(request, batch_limits)
        checker.finish()
        split.held = lanes.held()
    finally:
        lanes.close()
    if not split.findings.ok:
        _remove(split)
    elif split.routes is None:  # one model: a routes file left by an earlier try would mislead the merge
        routes_path(dest_dir).unlink(missing_ok=True)
    return split


class Lanes:
    """The open part of each model the input names (one lane, unless split_by_model finds several),
    and the routes file once a second model appears."""

    def __init__(self, split: Split, dest_dir: Path, hold: int) -> None:
        self.split = split
        self.dest_dir = dest_dir
        self.hold = hold
        self.lanes: dict[str, int] = {}  # model -> lane, numbered by first use
        self.open: list[tuple[PartFile, IO[bytes]]] = []  # by lane: its current part and that part's writer
        self.routes: IO[bytes] | None = None
        self.requests = 0

    def write(self, request: Request, batch_limits: BatchLimits) -> None:
        lane = self._lane(request.model)
        if lane == len(self.open) or not self.open[lane][0].fits(request, batch_limits):
            self._next_part(lane, request)
        part, writer = self.open[lane]
        if isinstance(writer, io.BytesIO) and not _holds(part, request, self.hold):
            writer = _spill(writer, part.path)
            self.open[lane] = (part, writer)
        writer.write(request.data)
        part.add(request)
        if self.routes is not None:
            self.routes.write(bytes((lane,)))
        self.requests += 1

    def _lane(self, model: str) -> int:
        lane = self.lanes.setdefault(model, len(self.lanes))
        if lane == 1 and self.routes is None:
            self._start_routes()
        return lane

    def _start_routes(self) -> None:
        """A second model: the input is not small (spill what was held) and needs its routes file,
        every request so far being the first model's."""
        part, writer = self.open[0]
        if isinstance(writer, io.BytesIO):
            self.open[0] = (part, _spill(writer, part.path))
        self.split.routes = routes_path(self.dest_dir)
        self.routes = _open_part(self.split.routes)
        self.routes.write(bytes(self.requests))

    def _next_part(self, lane: int, request: Request) -> None:
        parts = self.split.parts
        path = self.dest_dir / f"{len(parts)}.jsonl"
        if lane < len(self.open):
            last, writer = self.open[lane]
            # a second part: the first is not small after all
            _close(_spill(writer, last.path) if isinstance(writer, io.BytesIO) else writer)
        parts.append(PartFile(path, request.line_no, model=request.model))
        entry = (parts[-1], io.BytesIO() if self.hold > 0 and len(parts) == 1 else _open_part(path))
        if lane < len(self.open):
            self.open[lane] = entry
        else:
            self.open.append(entry)

    def held(self) -> bytes | None:
        """The one part of a small input, if it was held in memory."""
        if len(self.open) == 1 and isinstance(self.open[0][1], io.BytesIO):
            return self.open[0][1].getvalue()
        return None

    def close(self) -> None:
        for _, writer in self.open:
            _close(writer)
        _close(self.routes)


def _holds(part: PartFile, request: Request, hold: int) -> bool:
    return part.request_count + 1 <= hold and part.byte_size + len(request.data) <= HOLD_BYTES


def _open_part(path: Path) -> IO[bytes]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return open(path, "wb")


def _spill(held: io.BytesIO, path: Path) -> IO[bytes]:
    """Write what was held to the part's file and go on writing there."""
    writer = _open_part(path)
    writer.write(held.getbuffer())
    return writer


def write_part(data: bytes, path: Path) -> None:
    """Write a held part to its file, synced, before any record points to it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, data)


def write_normalised(source: Path, dest: Path) -> None:
    """Write ``source``'s request lines, normalised as validation wrote them, to ``dest`` (synced)."""
    with open(source, "rb") as fh:
        write_lines(iter_normalised(fh), dest)


def write_lines(lines: Iterable[bytes], dest: Path) -> None:
    """Write request lines, normalised as validation wrote them, to ``dest`` (synced): the part
    file of a small input that was held, made when it has to go in a batch of its own."""
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_writer(dest) as out:
        for data in lines:
            out.write(data)


def _close(writer: IO[bytes] | None) -> None:
    if writer is not None and not writer.closed and not isinstance(writer, io.BytesIO):
        writer.flush()
        os.fsync(writer.fileno())
        writer.close()


def _remove(split: Split) -> None:
    split.held = None
    if split.routes is not None:
        split.routes.unlink(missing_ok=True)
        split.routes = None
    for part in split.parts:
        with contextlib.suppress(FileNotFoundError):
            part.path.unlink()
    split.parts.clear()
