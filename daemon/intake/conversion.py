"""Conversion: an input decompressed (``*.jsonl.gz``) or wrapped (bare bodies, with
``wrap_bare_bodies``) before it is checked, so that what is checked is what is sent.

The converted file becomes the job's input from then on: checked, split, sent, archived, and read
again by ``batchd retry --failed``, so every later step sees one plain JSON Lines file. A
compressed ``NAME.jsonl.gz`` becomes ``NAME.jsonl``. The original is kept, as dropped, in
``uploaded_files/originals/``. Decompression is streamed and bounded: more than
``max_decompressed_bytes`` out (a gzip bomb, or a mistake) rejects the input before the disk fills.

Order, for crashes: the converted file is written and synced, then recorded as the job's input,
then the original is moved away. A crash before the record converts again; after it, the original
is moved away at the next look at the job (finish_conversion: its name is the converted one's
without CONVERTED).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from daemon.config import Settings
from daemon.intake.bare_bodies import WrapError, is_bare_body, opens_array, wrap_to
from daemon.intake.drop_names import is_compressed, request_stem
from daemon.intake.line_reader import LineTooLongError
from daemon.logs import get_logger
from daemon.state.fileops import atomic_writer, free_name, fsync_dir, move_no_clobber, safe_component
from daemon.state.rows import Job
from daemon.state.store import Store

log = get_logger(__name__)
ORIGINALS = "originals"  # under uploaded_files/
CONVERTED = ".converted.jsonl"  # appended to the original's name in state/inflight/
_FIRST_LINE = 1 << 20  # how much of the first line is read to tell bare bodies from requests
_COPY = 1 << 20


class ConversionError(ValueError):
    """The input cannot be converted; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Plan:
    decompress: bool
    wrap: bool
    array: bool = False  # the input is one JSON array (wrapped whole, see _bound)

    @property
    def needed(self) -> bool:
        return self.decompress or self.wrap


def plan_for(settings: Settings, job: Job) -> Plan:
    decompress = is_compressed(job.source_name)
    if not settings.wraps_bare_bodies(job.profile):
        return Plan(decompress, wrap=False)
    first = _first_line(Path(job.inflight_path), decompress)
    return Plan(decompress, _is_bare(first), opens_array(first))


def _first_line(path: Path, compressed: bool) -> bytes:
    """The file's first line that is not blank (its first MiB); empty if it cannot be read."""
    try:
        with _open(path, compressed) as fh:
            line = fh.readline(_FIRST_LINE)
            while line and not line.strip():
                line = fh.readline(_FIRST_LINE)
    except (OSError, EOFError, zlib.error):
        return b""  # the check that follows says what is wrong with it
    return line


def _is_bare(first: bytes) -> bool:
    """Whether a first line shows bare request bodies: a bare body, or the opening of one JSON array."""
    if opens_array(first):
        return True
    try:
        return is_bare_body(orjson.loads(first))
    except orjson.JSONDecodeError:
        return False


def _open(path: Path, compressed: bool) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def converted_path(original: Path) -> Path:
    """Where the converted copy of ``original`` (in state/inflight/) is written: beside it, named so
    that the original's path can be told from it (see finish_conversion)."""
    return original.with_name(original.name + CONVERTED)


def finish_conversion(settings: Settings, job: Job) -> None:
    """After a crash between recording a converted input and moving its original away: move it now
    (an original left in state/inflight/ would look like an input of its own to `batchd recover`)."""
    current = Path(job.inflight_path)
    if current.name.endswith(CONVERTED):
        original = current.with_name(current.name.removesuffix(CONVERTED))
        if os.path.lexists(original):
            keep_original(settings, original, job)


def convert_input(settings: Settings, store: Store, job: Job, plan: Plan) -> None:
    """Write the converted input, make it the job's input (``job`` is updated), keep the original."""
    original = Path(job.inflight_path)
    name = request_stem(job.source_name) + ".jsonl" if plan.decompress else job.source_name
    dest = converted_path(original)
    url = settings.wrap_url
    try:
        with _open(original, plan.decompress) as source, atomic_writer(dest) as out:
            bounded = _bounded(source, settings, plan)
            wrapped = wrap_to(bounded, out, url) if plan.wrap else None
            if wrapped is None:
                _copy(bounded, out)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # a full disk is no fault of the input: raised
        raise ConversionError(f"it is not a valid gzip file ({exc}); compress the JSON Lines file again") from None
    except (WrapError, LineTooLongError) as exc:
        raise ConversionError(f"its bare request bodies could not be wrapped: {_at_intake(str(exc))}") from None
    store.update_job(job.id, inflight_path=str(dest), source_name=name)
    job.inflight_path, job.source_name = str(dest), name
    kept = keep_original(settings, original, job)
    log.info("input_converted", job_id=job.id, file=name, decompressed=plan.decompress, wrapped=plan.wrap,
             original=str(kept))  # fmt: skip


def _at_intake(problem: str) -> str:
    """The wrapper names its command-line flag; at intake the same choice is the wrap_url setting."""
    if "--url" not in problem:
        return problem
    return (
        f"{problem} (at intake, --url is the setting wrap_url: set it to the url of every line, or wrap the "
        "file yourself with `batchd wrap FILE --url URL -o FILE`)"
    )


def _bounded(source: io.BufferedIOBase, settings: Settings, plan: Plan) -> BoundedReader:
    """The input, read no further than allowed: a JSON array is parsed whole, so it is held to
    max_line_bytes (memory); anything else to max_decompressed_bytes (disk)."""
    if plan.array:
        too_big = "it is one JSON array of more than {limit:,} bytes (max_line_bytes), too big to wrap at intake; "
        return BoundedReader(source, settings.max_line_bytes, too_big + "run `batchd wrap` on it instead")
    too_big = "it holds more than {limit:,} bytes decompressed (max_decompressed_bytes); split it into smaller files"
    return BoundedReader(source, settings.max_decompressed_bytes, too_big)


def _copy(source: BoundedReader, out: IO[bytes]) -> None:
    while chunk := source.read(_COPY):
        out.write(chunk)


def keep_original(settings: Settings, original: Path, job: Job) -> Path:
    folder = settings.uploaded / ORIGINALS
    folder.mkdir(mode=0o700, exist_ok=True)
    dropped = original.name.removeprefix(f"{job.id}_")
    dest = free_name(folder, safe_component(dropped), job.id)
    move_no_clobber(original, dest)
    fsync_dir(folder)
    return dest


class BoundedReader:
    """A binary file read no further than ``limit`` bytes: past it, ConversionError (a gzip bomb
    is stopped after ``limit`` bytes out, not when the disk is full)."""

    def __init__(self, fh: io.BufferedIOBase, limit: int, too_big: str) -> None:
        self._fh = fh
        self._limit = limit
        self._too_big = too_big  # the problem, with {limit} in it

    def _checked(self, data: bytes) -> bytes:
        if self._fh.tell() > self._limit:
            raise ConversionError(self._too_big.format(limit=self._limit))
        return data

    def readline(self, size: int = -1, /) -> bytes:
        return self._checked(self._fh.readline(size))

    def read(self, size: int = -1, /) -> bytes:
        return self._checked(self._fh.read(size if size >= 0 else self._limit + 1))

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()
