"""Split a validated input into part files, each within the per-batch limits, in one pass.

Parts are written as the lines are checked, so even a multi-gigabyte input is read once and never
held in memory. If the input turns out to be invalid the part files are removed again. Each part
file holds normalised lines (LF endings, no blank lines): exactly what was validated is uploaded.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from daemon.validation import BatchLimits, Findings, LineChecker, Request, iter_requests


@dataclass(slots=True)
class PartFile:
    path: Path
    first_line: int
    request_count: int = 0
    byte_size: int = 0
    embedding_inputs: int = 0
    est_tokens: int = 0

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


def split_file(source: Path, dest_dir: Path, batch_limits: BatchLimits) -> Split:
    """Validate ``source`` and write its parts as ``dest_dir/<n>.jsonl``; no parts if invalid."""
    dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    checker = LineChecker(batch_limits)
    split = Split(checker.findings)
    writer: IO[bytes] | None = None
    try:
        with open(source, "rb") as fh:
            for request in iter_requests(fh, checker):
                if checker.findings.problem_count:
                    continue  # keep checking to report every problem, but stop writing
                if not split.parts or not split.parts[-1].fits(request, batch_limits):
                    writer = _next_part(split, dest_dir, request.line_no, writer)
                assert writer is not None
                writer.write(request.data)
                split.parts[-1].add(request)
        checker.finish()
    finally:
        _close(writer)
    if not split.findings.ok:
        _remove(split)
    return split


def _next_part(split: Split, dest_dir: Path, first_line: int, writer: IO[bytes] | None) -> IO[bytes]:
    _close(writer)
    path = dest_dir / f"{len(split.parts)}.jsonl"
    split.parts.append(PartFile(path, first_line))
    return open(path, "wb")


def _close(writer: IO[bytes] | None) -> None:
    if writer is not None and not writer.closed:
        writer.flush()
        os.fsync(writer.fileno())
        writer.close()


def _remove(split: Split) -> None:
    for part in split.parts:
        with contextlib.suppress(FileNotFoundError):
            part.path.unlink()
    split.parts.clear()
