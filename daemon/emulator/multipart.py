"""Streaming parser for `multipart/form-data` uploads.

The file part goes straight to disk in chunks: batch inputs can be 200 MB+ and must never be
held in memory. Small text fields (`purpose`, `expires_after[...]`) are collected in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

CHUNK_SIZE = 64 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
FILE_FIELD = "file"
_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')
# httpx2 escapes `"` and control characters as %XX in form parameters (the HTML5 rule).
_PERCENT_ESCAPE = re.compile(r"%(22|[01][0-9A-Fa-f])")


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


@dataclass(slots=True)
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    file_size: int = 0


def boundary_of(content_type: str) -> bytes:
    kind, _, _ = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError("Content-Type must be multipart/form-data.")
    params = disposition_params(content_type)
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 200:
        raise MultipartError("The multipart boundary is missing.")
    return boundary.encode("latin-1")


def disposition_params(header: str) -> dict[str, str]:
    """Parameters of a header value such as `form-data; name="file"; filename="x.jsonl"`."""
    params: dict[str, str] = {}
    for match in _PARAM.finditer(header):
        name = match.group(1).lower()
        quoted, bare = match.group(2), match.group(3)
        value = _unescape(quoted) if quoted is not None else bare.strip()
        if name.endswith("*"):  # RFC 5987: filename*=utf-8''na%C3%AFve.jsonl
            name, value = name[:-1], unquote(value.split("'", 2)[-1])
        params[name] = value
    return params


def _unescape(value: str) -> str:
    value = _PERCENT_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)
    return re.sub(r"\\(.)", r"\1", value)


class _Parser:
    def __init__(self, read: Callable[[int], bytes], boundary: bytes, chunk_size: int) -> None:
        self._read = read
        self._chunk_size = chunk_size
        self._delimiter = b"\r\n--" + boundary
        # A leading CRLF lets the first boundary be found like every other one.
        self._buffer = bytearray(b"\r\n")

    def _fill(self) -> None:
        chunk = self._read(self._chunk_size)
        if not chunk:
            raise MultipartError("The multipart body ended unexpectedly.")
        self._buffer += chunk

    def _need(self, size: int) -> None:
        while len(self._buffer) < size:
            self._fill()

    def stream_until_delimiter(self, sink: Callable[[bytes], None]) -> None:
        """Pass bytes to `sink` up to the next delimiter, holding back a possible partial match."""
        keep = len(self._delimiter) - 1
        while True:
            index = self._buffer.find(self._delimiter)
            if index >= 0:
                sink(bytes(self._buffer[:index]))
                del self._buffer[: index + len(self._delimiter)]
                return
            if len(self._buffer) > keep:
                sink(bytes(self._buffer[:-keep]))
                del self._buffer[:-keep]
            self._fill()

    def next_part_follows(self) -> bool:
        """After a delimiter: `--` closes the body, CRLF opens another part."""
        self._need(2)
        marker = bytes(self._buffer[:2])
        del self._buffer[:2]
        if marker == b"--":
            return False
        if marker != b"\r\n":
            raise MultipartError("Malformed multipart boundary line.")
        return True

    def read_headers(self) -> dict[str, str]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise MultipartError("Multipart part headers are too long.")
            self._fill()
        block = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
        del self._buffer[: end + 4]
        headers = {}
        for line in block.split("\r\n"):
            name, separator, value = line.partition(":")
            if separator:
                headers[name.strip().lower()] = value.strip()
        return headers


class _FieldSink:
    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > MAX_FIELD_BYTES:
            raise MultipartError("A multipart form field is too large.")


class _FileSink:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.size += len(chunk)


def parse_multipart(
    read: Callable[[int], bytes], content_type: str, dest: Path, chunk_size: int = CHUNK_SIZE
) -> MultipartForm:
    """Parse the form; the `file` part is written to `dest` (the caller removes it on error)."""
    parser = _Parser(read, boundary_of(content_type), chunk_size)
    parser.stream_until_delimiter(lambda preamble: None)
    form = MultipartForm()
    while parser.next_part_follows():
        params = disposition_params(parser.read_headers().get("content-disposition", ""))
        name = params.get("name", "")
        if name == FILE_FIELD and "filename" in params:
            _read_file_part(parser, form, params["filename"], dest)
        else:
            sink = _FieldSink()
            parser.stream_until_delimiter(sink)
            form.fields[name] = sink.data.decode("utf-8", errors="replace")
    return form


def _read_file_part(parser: _Parser, form: MultipartForm, filename: str, dest: Path) -> None:
    if form.filename is not None:
        raise MultipartError("Only one 'file' part is allowed.")
    with dest.open("wb") as handle:
        sink = _FileSink(handle)
        parser.stream_until_delimiter(sink)
    form.filename = filename
    form.file_size = sink.size
