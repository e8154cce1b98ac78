"""Verification: a batch's downloads count as its results only once they add up.

Every line of the output and error files must be a JSON object with a string custom_id of that
batch (the part's requests; a pack's prefixed ids), no custom_id may come twice, and the lines of
requests that ran must account for the batch's ``request_counts`` (completed + failed), or for
every request when the batch completed. A download that does not add up is a transient fault,
never a result: it is deleted and fetched again with back-off. Only after ``verify_downloads_for``
seconds of failures is it accepted as it is: the lines that verify are kept, the others go to
``BATCH_unmatched.jsonl`` beside the results, the problems are recorded for summary.json, and
the batch's files on the service are kept for a person to look at (hygiene skips them).

Files are read line by line; memory holds at most the batch's request ids and the ids seen.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson

from daemon.clock import WALL_CLOCK, Clock
from daemon.errors import DaemonError
from daemon.intake.line_reader import CEILING, LongLine, copy_line, is_blank, read_lines
from daemon.intake.validation import iter_normalised
from daemon.logs import get_logger
from daemon.results.outcome import NOT_RUN, rank
from daemon.service.batch_info import BatchInfo
from daemon.state.fileops import atomic_writer
from daemon.state.rows import Job, Part
from daemon.state.store import Store

log = get_logger(__name__)
_SINCE = "verify_failed_since:"  # fact key prefix: when the batch's downloads first failed to verify
_PROBLEMS = "verify_problems:"  # fact key prefix: the batch was accepted unverified; its problems
SHOWN_PLACES = 3  # places named per kind of bad line


class UnverifiedDownloadError(DaemonError):
    """A batch's downloads did not add up: a transient fault, fetched again on the scheduled back-off
    (not at once in the call: a broken file tends to come back the same for a while)."""


def unmatched_name(batch_id: str) -> str:
    return f"{batch_id}_unmatched.jsonl"


@dataclass(slots=True)
class Tally:
    """What one pass over a batch's downloads found."""

    expected: set[str] | None
    seen: set[str] = field(default_factory=set)
    lines: dict[str, int] = field(default_factory=dict)  # per file ("output", "errors"): non-blank lines
    ran: int = 0  # accepted lines of requests that ran (not batch_expired / batch_cancelled lines)
    rejected: dict[str, list[str]] = field(default_factory=dict)  # reason -> the first few places
    rejections: Counter[str] = field(default_factory=Counter)  # reason -> lines

    def judge(self, role: str, line_no: int, raw: bytes | LongLine) -> bool:
        """Count one non-blank line; True if it is accepted (first of its custom_id, of this batch)."""
        self.lines[role] = self.lines.get(role, 0) + 1
        if isinstance(raw, LongLine):
            return self._reject(f"more than {CEILING:,} bytes (too big to read)", role, line_no)
        line = json_object(raw)
        custom_id = line.get("custom_id") if line is not None else None
        if line is None or not isinstance(custom_id, str):
            return self._reject("not a JSON object with a string custom_id", role, line_no)
        if self.expected is not None and custom_id not in self.expected:
            return self._reject("a custom_id that is not in this batch", role, line_no)
        if custom_id in self.seen:
            return self._reject("a custom_id already seen (the first line is kept)", role, line_no)
        self.seen.add(custom_id)
        self.ran += rank(line) != NOT_RUN
        return True

    def _reject(self, reason: str, role: str, line_no: int) -> bool:
        places = self.rejected.setdefault(reason, [])
        if len(places) < SHOWN_PLACES:  # a garbage file has a line for every line: count, don't list
            places.append(f"{role} line {line_no}")
        self.rejections[reason] += 1
        return False

    def problems(self, batch: BatchInfo) -> list[str]:
        """What did not add up, in words; empty if the downloads verify."""
        found = [_rejection(reason, places, self.rejections[reason]) for reason, places in self.rejected.items()]
        out, err = self.lines.get("output", 0), self.lines.get("errors", 0)
        counts = batch.request_counts
        if counts is not None and self.ran < (counts.completed or 0) + (counts.failed or 0):
            never_ran = len(self.seen) - self.ran
            found.append(
                f"output had {out} lines and errors {err}"
                + (f" ({never_ran} of them for requests that never ran)" if never_ran else "")
                + f", request_counts says {counts.completed or 0} completed and {counts.failed or 0} failed"
            )
        if batch.status == "completed" and self.expected is not None and len(self.seen) < len(self.expected):
            missing = len(self.expected) - len(self.seen)
            found.append(f"{missing} of {len(self.expected)} requests have no line, though the batch completed")
        return found


def json_object(raw: bytes) -> dict[str, Any] | None:
    """One output line as a JSON object; None if it is not one."""
    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return line if isinstance(line, dict) else None


def _rejection(reason: str, places: list[str], lines: int) -> str:
    shown = ", ".join(places) + (", ..." if lines > len(places) else "")
    return f"{lines} line(s) with {reason}: {shown}"


@dataclass(frozen=True, slots=True)
class Downloads:
    """One batch's downloaded files in the results folder, and where its request ids are read."""

    batch: BatchInfo
    files: list[tuple[str, Path]]  # (role, path), output first: the first line of a custom_id wins
    requests: Path | None  # None: an imported batch whose input is not here

    def existing(self) -> list[tuple[str, Path]]:
        return [(role, path) for role, path in self.files if path.exists()]

    def tally(self) -> Tally:
        tally = Tally(_request_ids(self.requests))
        for role, path in self.existing():
            with open(path, "rb") as fh:
                for line_no, _, raw in _lines(fh):
                    tally.judge(role, line_no, raw)
        return tally


def _request_ids(requests: Path | None) -> set[str] | None:
    if requests is None:
        return None
    with open(requests, "rb") as fh:
        return {str(orjson.loads(raw)["custom_id"]) for raw in iter_normalised(fh)}


def _lines(fh: IO[bytes]) -> Iterator[tuple[int, int, bytes | LongLine]]:
    """(line number, offset, raw line) of the non-blank lines; the last one may lack its newline."""
    offset = 0
    for line_no, raw in read_lines(fh, CEILING):
        if isinstance(raw, LongLine) or not is_blank(raw):
            yield line_no, offset, raw
        offset += raw.size if isinstance(raw, LongLine) else len(raw)


def _write_line(raw: bytes | LongLine, fh: IO[bytes], offset: int, out: IO[bytes]) -> None:
    """Write a line, ending in LF; one too big to read is copied in chunks, never held."""
    if isinstance(raw, LongLine):
        copy_line(fh, offset, out)
        fh.seek(offset + raw.size)  # where the pass over ``fh`` goes on
    else:
        out.write(raw if raw.endswith(b"\n") else raw + b"\n")


class Verification:
    """Decides, per collection try, whether a batch's downloads are its results."""

    def __init__(self, store: Store, window: float, clock: Clock = WALL_CLOCK) -> None:
        self.store = store
        self.window = window
        self.clock = clock  # the window runs by it

    def check(self, job: Job, part: Part, downloads: Downloads) -> bool:
        """True: verified. False: accepted with problems (recorded). Raises UnverifiedDownloadError: try again."""
        batch = downloads.batch
        if self.store.fact(_PROBLEMS + batch.id) is not None:  # accepted before a crash: finish that
            _settle(downloads)
            return False
        problems = downloads.tally().problems(batch)
        if not problems:
            self.store.delete_fact(_SINCE + batch.id)  # verified after all: nothing left to time
            return True
        since = self._failed_since(batch.id)
        if self.clock.now() - since < self.window:
            self._reject(job, part, downloads, problems, since)
        self._accept(job, part, downloads, problems)
        return False

    def failing(self, batch_id: str) -> bool:
        """Whether the batch's downloads failed to verify and are not yet accepted as they are."""
        return self.store.fact(_SINCE + batch_id) is not None and self.store.fact(_PROBLEMS + batch_id) is None

    def _failed_since(self, batch_id: str) -> float:
        recorded = self.store.fact(_SINCE + batch_id)
        if recorded is not None:
            return float(recorded)
        now = self.clock.now()
        self.store.set_fact(_SINCE + batch_id, repr(now))
        return now

    def _reject(self, job: Job, part: Part, downloads: Downloads, problems: list[str], since: float) -> NoReturn:
        for _, path in downloads.files:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.warning(
            "download_unverified",
            job_id=job.id,
            part=part.label,
            batch_id=downloads.batch.id,
            problems=problems,
            accepted_in=round(since + self.window - self.clock.now(), 1),
        )
        raise UnverifiedDownloadError(
            f"the downloads of batch {downloads.batch.id} did not add up: " + "; ".join(problems)
        )

    def record_unfetched(self, job: Job, part: Part, downloads: Downloads, error: str) -> None:
        """The service refused a download for good (e.g. the file expired): whatever is missing
        is reported like downloads that never added up, never as requests that did not run; a file
        that did arrive is kept to its lines that verify."""
        self._record(job, part, downloads.batch, [f"its files could not be downloaded: {error}"])
        _settle(downloads)

    def _accept(self, job: Job, part: Part, downloads: Downloads, problems: list[str]) -> None:
        self._record(job, part, downloads.batch, problems)
        _settle(downloads)
        log.error(
            "download_accepted_unverified",
            job_id=job.id,
            part=part.label,
            batch_id=downloads.batch.id,
            problems=problems,
            hint="requests without a line are written as result_missing; see problems in summary.json",
        )

    def _record(self, job: Job, part: Part, batch: BatchInfo, problems: list[str]) -> None:
        roles = ((part.file_id, "input"), (batch.output_file_id, "output"), (batch.error_file_id, "errors"))
        files = [(file_id, role) for file_id, role in roles if file_id]  # Azure sends "" for "no file"
        kept = [file_id for file_id, _ in files]
        with self.store.transaction():
            self.store.set_fact(_PROBLEMS + batch.id, orjson.dumps({"problems": problems, "kept": kept}).decode())
            self.store.keep_remote_files(job.id, files, time.time())


def _settle(downloads: Downloads) -> None:
    """Move the lines that do not verify out of the downloads into the unmatched file.

    The unmatched file is written once, from the downloads as they came; only then are the
    downloads rewritten. Filtering twice gives the same files, so a crash anywhere is harmless.
    """
    if not downloads.existing():
        return
    first = downloads.existing()[0][1]
    unmatched = first.with_name(unmatched_name(downloads.batch.id))
    if not unmatched.exists():
        _write_unmatched(downloads, unmatched)
    if not unmatched.exists():  # every line verifies (only the counts fell short): nothing to take out
        return
    tally = Tally(_request_ids(downloads.requests))
    for role, path in downloads.existing():
        with open(path, "rb") as fh, atomic_writer(path) as out:
            for line_no, offset, raw in _lines(fh):
                if tally.judge(role, line_no, raw):
                    _write_line(raw, fh, offset, out)


def _write_unmatched(downloads: Downloads, dest: Path) -> None:
    tally = Tally(_request_ids(downloads.requests))
    written = False
    with atomic_writer(dest) as out:
        for role, path in downloads.existing():
            with open(path, "rb") as fh:
                for line_no, offset, raw in _lines(fh):
                    if not tally.judge(role, line_no, raw):
                        _write_line(raw, fh, offset, out)
                        written = True
    if not written:
        dest.unlink()


def unverified_batches(store: Store, parts: list[Part]) -> dict[str, dict[str, Any]]:
    """batch id -> {"problems": [...], "kept": [file ids]} for the parts' batches accepted unverified."""
    found: dict[str, dict[str, Any]] = {}
    for part in parts:
        for batch_id in [*filter(None, part.old_batch_ids.split(",")), part.batch_id]:
            recorded = store.fact(_PROBLEMS + batch_id) if batch_id else None
            if batch_id and recorded is not None:
                found[batch_id] = orjson.loads(recorded)
    return found


def problem_entries(store: Store, parts: list[Part]) -> list[dict[str, Any]]:
    """summary.json's ``problems``: one entry per thing that did not add up, naming its batch."""
    return [
        {"batch_id": batch_id, "problem": problem, "service_files_kept": recorded["kept"]}
        for batch_id, recorded in unverified_batches(store, parts).items()
        for problem in recorded["problems"]
    ]
