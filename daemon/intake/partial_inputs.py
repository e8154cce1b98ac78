"""Partial inputs: with ``partial_inputs = "split_out"`` the lines that fail the checks leave the
input, and the rest goes ahead.

By default (``"reject"``) one bad line sends the whole input to failed/, nothing of it sent. With
``"split_out"`` the bad lines are written, as they were, to ``failed/NAME.split-out.jsonl`` with a
report naming each problem by its line in the original input; the good lines become the job's
input (the original is kept in uploaded_files/originals/, as for any converted input) and are
checked, split and sent as usual. The results folder gets ``split_out.json`` saying which lines of
the original were split out, and summary.json repeats it, so nobody reads results.jsonl thinking
it answers every line that was dropped. An input with no good line at all is rejected as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from daemon.config import Settings
from daemon.intake.conversion import CONVERTED, converted_path, keep_original
from daemon.intake.drop_names import request_stem
from daemon.intake.line_formats import line_checker
from daemon.intake.line_reader import LongLine, copy_line, read_lines
from daemon.intake.reports import validation_lines, write_report
from daemon.intake.validation import BatchLimits, Findings, iter_requests, normalise
from daemon.logs import get_logger
from daemon.state.fileops import atomic_writer, free_name, fsync_dir, safe_component, write_atomic
from daemon.state.rows import Job
from daemon.state.store import Store

log = get_logger(__name__)
SPLIT_OUT = "split_out"
NOTE_NAME = "split_out.json"  # in the results folder
MAX_NOTED_LINES = 10_000  # line numbers listed in the note; the count is always exact


@dataclass(frozen=True, slots=True)
class Separation:
    kept: int  # requests that go ahead
    lines: list[int]  # the original's line numbers split out (the first MAX_NOTED_LINES)
    count: int  # lines split out
    path: Path  # the split-out lines in failed/
    report: Path

    def note(self, original: str) -> dict[str, Any]:
        return {
            "input": original,
            "lines_split_out": self.count,
            "line_numbers": self.lines,
            "file": str(self.path),
            "report": str(self.report),
        }


def split_out(settings: Settings, store: Store, job: Job, batch_limits: BatchLimits) -> Separation | None:
    """Move the bad lines of the job's input to failed/ and make the good ones its input; None
    (nothing done) when no line is good."""
    source = Path(job.inflight_path)
    good, findings = _good_lines(source, batch_limits)
    if not any(good):
        return None
    stem = request_stem(job.source_name)
    kept_path = converted_path(source)
    bad_path = free_name(settings.failed, safe_component(f"{stem}.split-out.jsonl"), job.id)
    lines, count = _write_apart(source, good, kept_path, bad_path, batch_limits.max_line_bytes)
    fsync_dir(settings.failed)
    report = _report(settings, job, bad_path, findings, count)
    store.update_job(job.id, inflight_path=str(kept_path))
    original = job.source_name
    job.inflight_path = str(kept_path)
    if source.name.endswith(CONVERTED):
        source.unlink()  # a decompressed or wrapped copy: the original as dropped is kept already
    else:
        keep_original(settings, source, job)
    kept = sum(good)
    log.warning("lines_split_out", job_id=job.id, file=original, lines=count, kept=kept, report=str(report))
    return Separation(kept, lines, count, bad_path, report)


def _good_lines(source: Path, batch_limits: BatchLimits) -> tuple[bytearray, Findings]:
    """One byte per line of the input (index: line number), 1 where the line is a valid request."""
    checker = line_checker(batch_limits)
    checker.repeated_lines = []
    good = bytearray(1)  # line numbers start at 1
    with open(source, "rb") as fh:
        for request in iter_requests(fh, checker):
            good.extend(bytes(request.line_no + 1 - len(good)))
            good[request.line_no] = 1
    for line_no in checker.repeated_lines:  # a repeated custom_id is only known after the pass
        good[line_no] = 0
    return good, checker.finish()


def _write_apart(source: Path, good: bytearray, kept: Path, bad: Path, max_line: int) -> tuple[list[int], int]:
    """Write the good lines (normalised) to ``kept`` and the others (as they were) to ``bad``."""
    lines: list[int] = []
    count = 0
    with open(source, "rb") as fh, atomic_writer(kept) as ok_out, atomic_writer(bad, mode=0o644) as bad_out:
        start = fh.tell()
        for line_no, raw in read_lines(fh, max_line):
            end = fh.tell()
            if line_no < len(good) and good[line_no]:
                assert not isinstance(raw, LongLine)  # a valid request is never over the line limit
                ok_out.write(normalise(raw) or b"")
            elif isinstance(raw, LongLine) or normalise(raw) is not None:
                _copy_bad(fh, raw, start, end, bad_out)
                count += 1
                if len(lines) < MAX_NOTED_LINES:
                    lines.append(line_no)
            start = end
    return lines, count


def _copy_bad(fh: IO[bytes], raw: bytes | LongLine, start: int, end: int, out: IO[bytes]) -> None:
    if isinstance(raw, LongLine):  # streamed, never held
        copy_line(fh, start, out)
        fh.seek(end)
    else:
        out.write(raw if raw.endswith(b"\n") else raw + b"\n")


def _report(settings: Settings, job: Job, bad_path: Path, findings: Findings, count: int) -> Path:
    reason = (
        f"{count} line(s) failed the checks and were split out (partial_inputs = split_out); the other lines went "
        "ahead. Line numbers below are those of the original input, kept in "
        f"{settings.uploaded_dir}/originals/"
    )
    advice = (
        f"Fix the lines in {settings.failed_dir}/{bad_path.name}, then run `batchd retry {bad_path.name}`; "
        "they run as a new job with results of their own."
    )
    lines = validation_lines(findings, f"{settings.failed_dir}/{bad_path.name}")
    return write_report(bad_path, job.source_name, job.id, reason, lines, advice, settings.sharing(), settings.root)


def write_note(folder: Path, original: str, separation: Separation) -> None:
    """Say in the results folder which lines of the original were split out."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(folder / NOTE_NAME, orjson.dumps(separation.note(original), option=orjson.OPT_INDENT_2) + b"\n")


def read_note(folder: Path) -> dict[str, Any] | None:
    """The split-out note of a results folder (for summary.json); None if nothing was split out."""
    try:
        note: dict[str, Any] = orjson.loads((folder / NOTE_NAME).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return note
