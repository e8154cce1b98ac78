"""The form ``response.body`` takes in results.jsonl when ``normalise_bodies`` is set.

Some compatible services (llama-stack, Groq) send each result's body as a JSON-encoded string. By
default results.jsonl keeps the line as the service sent it; with ``normalise_bodies`` such a body
is written as the object it encodes, as OpenAI sends it. A line whose body is not a string holding
a JSON object is copied as it came (re-encoding it could change nothing a user relies on).
"""

from __future__ import annotations

from typing import IO, Any

import orjson

from daemon.intake.line_reader import LineTooLongError, copy_line, read_line


def copy_result_line(fh: IO[bytes], offset: int, out: IO[bytes], normalise: bool) -> None:
    """Copy the result line at ``offset`` to ``out``, its string body decoded when ``normalise``."""
    line = _normalised(fh, offset) if normalise else None
    if line is None:
        copy_line(fh, offset, out)
    else:
        out.write(line)


def _normalised(fh: IO[bytes], offset: int) -> bytes | None:
    try:
        return _with_object_body(read_line(fh, offset))
    except LineTooLongError:  # too big to read whole: copied as it came, in chunks
        return None


def _with_object_body(raw: bytes) -> bytes | None:
    """The line with its string body as an object; None when there is nothing to change."""
    try:
        line: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    response = line.get("response") if isinstance(line, dict) else None
    if not isinstance(response, dict) or not isinstance(body := response.get("body"), str):
        return None
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(decoded, dict):
        return None
    response["body"] = decoded
    return orjson.dumps(line) + b"\n"
