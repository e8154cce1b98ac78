"""Tampered file downloads: what a quirky or broken service sends instead of a batch's output file.

A "tamper" fault rule replaces the body of one GET /v1/files/{id}/content (status 200, as if all
were well) with one of these:
  * empty:         no bytes at all;
  * garbage:       an HTML error page (a proxy's answer passed through);
  * bogus_json:    one large JSON object that is no output line (1 MiB);
  * truncate:      the first half of the bytes, cut in the middle of a line;
  * drop_lines:    the file without its first `lines` lines;
  * extra_ids:     the file plus `lines` lines naming custom_ids the batch never had;
  * duplicate_ids: the file plus its first `lines` lines again, each with another line "id".
The file is streamed through a spooled temporary file, so a big one never sits whole in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

import orjson

from daemon.emulator.messages import FileReply, Reply

TAMPER_MODES = ("empty", "garbage", "bogus_json", "truncate", "drop_lines", "extra_ids", "duplicate_ids")
SPOOL_BYTES = 1 << 20
BOGUS_JSON_BYTES = 1 << 20
GARBAGE = (
    b"<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n"
    b"<body>\n<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
)


def tampered(reply: Reply, mode: str, lines: int) -> Reply:
    """``reply`` with its file body replaced; an error reply (no such file) goes out as it is."""
    if not isinstance(reply, FileReply):
        return reply
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the sender closes it
    with reply.handle:
        for chunk in _body(reply.handle, reply.size, mode, lines):
            spool.write(chunk)
    size = spool.tell()
    spool.seek(0)
    # A SpooledTemporaryFile is a BinaryIO in all but its declared type.
    return FileReply(spool, size, reply.status, reply.content_type)  # type: ignore[arg-type]


def _body(source: IO[bytes], size: int, mode: str, lines: int) -> Iterator[bytes]:
    if mode == "garbage":
        yield GARBAGE
    elif mode == "bogus_json":
        yield orjson.dumps({"object": "error", "padding": "x" * BOGUS_JSON_BYTES}) + b"\n"
    elif mode == "truncate":
        yield source.read(size // 2)
    elif mode == "drop_lines":
        yield from (raw for n, raw in enumerate(source) if n >= lines)
    elif mode == "extra_ids":
        yield from _with_extra_ids(source, lines)
    elif mode == "duplicate_ids":
        yield from _with_duplicates(source, lines)
    # "empty": nothing


def _with_extra_ids(source: IO[bytes], lines: int) -> Iterator[bytes]:
    first: dict[str, Any] | None = None
    for raw in source:
        first = first or orjson.loads(raw)
        yield raw
    for n in range(lines):
        extra = dict(first or {"response": None, "error": None})
        extra.update(id=f"batch_req_extra_{n}", custom_id=f"emulator-extra-{n}")
        yield orjson.dumps(extra) + b"\n"


def _with_duplicates(source: IO[bytes], lines: int) -> Iterator[bytes]:
    again: list[bytes] = []
    for raw in source:
        if len(again) < lines:
            again.append(raw)
        yield raw
    for n, raw in enumerate(again):
        line = orjson.loads(raw)
        line["id"] = f"batch_req_duplicate_{n}"  # so a reader can tell which of the two it kept
        yield orjson.dumps(line) + b"\n"
