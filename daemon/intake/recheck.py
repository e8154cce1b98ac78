"""The recheck of a held input before it is read again: it must still be the bytes that were checked.

A small input held for a shared batch has no part file: the pack, its own part file (if it goes
alone after all) and its results' order are read from the input itself in state/inflight/, later.
A writer that still had the file open may have changed it since; sending or ordering by what is
there now would send requests nobody validated. So each of those reads compares the file with the
size and sha256 recorded when it was checked, and uses the very bytes it compared. The read is
small (a held input is at most splitter.HOLD_BYTES); a file that grew is hashed by streaming.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from daemon.intake.validation import iter_normalised
from daemon.state.rows import Job

_CHUNK = 1 << 16


class InputChangedError(Exception):
    """A held input is no longer what was validated and fingerprinted."""

    def __init__(self, job: Job, detail: str) -> None:
        super().__init__(f"the file changed after it was checked ({detail})")
        self.job_id = job.id
        self.detail = detail


def read_checked(job: Job, path: Path | None = None) -> bytes:
    """The input's bytes, provided they have the size and sha256 recorded when it was checked."""
    digest, kept, size = hashlib.sha256(), bytearray(), 0
    limit = job.size if job.size is not None else -1
    try:
        fh = open(path or job.inflight_path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputChangedError(job, "it is gone from state/inflight/") from None
    with fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if limit < 0 or size <= limit:
                kept += chunk
    _compare(job, size, digest.hexdigest())
    return bytes(kept)


def checked_lines(job: Job, path: Path | None = None) -> Iterator[bytes]:
    """The input's request lines, normalised as validation saw them, from the bytes that were checked."""
    return iter_normalised(io.BytesIO(read_checked(job, path)))


def _compare(job: Job, size: int, sha256: str) -> None:
    changes = []
    if job.size is not None and size != job.size:
        changes.append(f"size was {job.size:,} bytes, now {size:,}")
    if job.sha256 and sha256 != job.sha256:
        changes.append(f"sha256 was {job.sha256}, now {sha256}")
    if changes:
        raise InputChangedError(job, "; ".join(changes))
