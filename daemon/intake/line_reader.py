"""Reading JSONL lines with a fixed buffer, whatever a line's length.

``readline()`` without a limit holds a whole line, and with one it cuts a long line short without
saying how long it was. Here a line is read in chunks of at most CHUNK bytes: an ordinary line comes
back in one piece (one C-level readline), and a line longer than a chunk is first streamed past,
chunk by chunk and held by nobody, only to learn its size. A line within the caller's limit is then
read again in one exact read (the file is seekable: inputs, part files and downloads are regular
files); a line over it is never held at all and comes back as a LongLine with its true size. So
the most one line can cost is the limit, and a line over the limit costs one chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Protocol

from daemon import limits

CHUNK = 1 << 20
# A line no part file or download may exceed: no batch takes more, and no line of ours is longer.
CEILING = limits.MAX_BYTES_PER_BATCH
_SCAN = 1 << 16  # streaming past a long line: small pieces, each dropped at once
_ENDING_BYTES = frozenset(b"\r\n")


class LineSource(Protocol):
    """What line reading needs of a file: forward reads, and seeking back to re-read a long line."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int: ...

    def tell(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the limit: streamed past, never held; only its size is known."""

    size: int  # bytes in the file, its line ending included
    length: int  # bytes without the line ending: what the limit is about


class LineTooLongError(ValueError):
    """A line over the limit where every line must be read (a part file, a download)."""

    def __init__(self, line_no: int, line: LongLine, max_length: int) -> None:
        super().__init__(f"line {line_no} is {line.length:,} bytes, over the {max_length:,}-byte line limit")
        self.line_no = line_no
        self.line = line


def read_lines(fh: LineSource, max_length: int) -> Iterator[tuple[int, bytes | LongLine]]:
    """(line number, raw line with its ending) for each line; a LongLine for one longer than
    ``max_length`` bytes (not counting its ending). Holds at most one chunk or one line within it."""
    line_no = 0
    while raw := fh.readline(CHUNK):
        line_no += 1
        if len(raw) == CHUNK and not raw.endswith(b"\n"):
            yield line_no, _long_line(fh, raw, max_length)
        elif len(raw) > max_length and content_length(raw) > max_length:
            yield line_no, LongLine(len(raw), content_length(raw))
        else:
            yield line_no, raw


def iter_lines(fh: LineSource, max_length: int = CEILING) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a file whose every line must be read: one over ``max_length``
    raises LineTooLongError rather than being dropped (no request or result is ever skipped)."""
    for line_no, raw in read_lines(fh, max_length):
        if isinstance(raw, LongLine):
            raise LineTooLongError(line_no, raw, max_length)
        yield line_no, raw


def read_line(fh: LineSource, offset: int, max_length: int = CEILING) -> bytes:
    """The line at ``offset`` (one found by an earlier pass), read once, exactly."""
    fh.seek(offset)
    for line_no, raw in read_lines(fh, max_length):
        if isinstance(raw, LongLine):
            raise LineTooLongError(line_no, raw, max_length)
        return raw
    return b""


def is_blank(raw: bytes) -> bool:
    """Whether a line is only whitespace; unlike ``not raw.strip()`` it copies nothing."""
    return not raw or raw.isspace()


def copy_line(fh: IO[bytes], offset: int, out: IO[bytes]) -> int:
    """Copy the line at ``offset`` to ``out`` chunk by chunk, ending it with LF; return its size."""
    fh.seek(offset)
    size, chunk = 0, b""
    while not chunk.endswith(b"\n") and (chunk := fh.readline(CHUNK)):
        out.write(chunk)
        size += len(chunk)
    if size and not chunk.endswith(b"\n"):
        out.write(b"\n")  # the file's last line, without its newline
    return size


def _long_line(fh: LineSource, head: bytes, max_length: int) -> bytes | LongLine:
    start = fh.tell() - len(head)
    size, tail = len(head), head
    while not tail.endswith(b"\n") and (chunk := fh.readline(_SCAN)):
        size, tail = size + len(chunk), chunk
    length = size - (len(tail) - content_length(tail))
    if length > max_length:
        return LongLine(size, length)
    end = fh.tell()
    fh.seek(start)
    data = fh.read(size)  # one exact read: a line within the limit is held once, never grown
    fh.seek(end)
    return data


def content_length(raw: bytes) -> int:
    """The bytes of a line without its ending (CR and LF at its end); copies nothing."""
    end = len(raw)
    while end and raw[end - 1] in _ENDING_BYTES:
        end -= 1
    return end
