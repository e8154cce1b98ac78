"""The form a result line takes in results.jsonl: its body decoded when ``normalise_bodies`` is set,
its model named as the user wrote it when a profile's model map renamed it at upload.

Some compatible services (llama-stack, Groq) send each result's body as a JSON-encoded string. By
default results.jsonl keeps the line as the service sent it; with ``normalise_bodies`` such a body
is written as the object it encodes, as OpenAI sends it. A line whose body is not a string holding
a JSON object is copied as it came (re-encoding it could change nothing a user relies on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson

from daemon.intake.line_reader import LineTooLongError, copy_line, read_line
from daemon.intake.model_names import RESULT_MODEL, NotEditableError, renamed

NO_NAMES: Mapping[str, str] = {}


def copy_result_line(
    fh: IO[bytes], offset: int, out: IO[bytes], normalise: bool, names: Mapping[str, str] = NO_NAMES
) -> None:
    """Copy the result line at ``offset`` to ``out``: its string body decoded when ``normalise``, then
    ``response.body.model`` renamed back by ``names`` (deployment -> the model the lines named)."""
    if not normalise and not names:
        copy_line(fh, offset, out)  # the usual case: a huge result is copied in chunks
        return
    try:
        raw = read_line(fh, offset)
    except LineTooLongError:  # too big to read whole: copied as it came, in chunks
        copy_line(fh, offset, out)
        return
    line = (_with_object_body(raw) or raw) if normalise else raw
    out.write(_named_back(line, names) if names else line)


def _named_back(line: bytes, names: Mapping[str, str]) -> bytes:
    try:
        return renamed(line, names, RESULT_MODEL)
    except NotEditableError:  # e.g. a body sent as a JSON string: kept as the service wrote it
        return line


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
