"""Byte-exact model renames: a profile's model map, applied to the bytes sent and undone in results.

Azure batches name a deployment, not a model, in each line's ``body.model``; the user writes the
model (``gpt-4o-mini``) and the profile's ``models`` table names its deployment. As with the
custom_id (custom_ids.py), parsing and serialising the line again would change the request (big
integers, key order, spacing, escapes), so only the model value's bytes are replaced: the value is
found by walking the line's own bytes (top-level ``body``, then its ``model``), compared decoded
(so an escaped ``gpt\\u002d4o-mini`` counts), and replaced by the JSON string of the new name.
Every other byte of the line stays as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import orjson

from daemon.intake.custom_ids import NotEditableError, member_spans
from daemon.state.fileops import atomic_writer

REQUEST_MODEL = ("body", "model")  # in an input line
RESULT_MODEL = ("response", "body", "model")  # in an output line, where the service echoes it
_SPACE = b" \t\r\n"

__all__ = ["NotEditableError", "echoed_names", "model_of", "rename_part", "renamed"]


def renamed(line: bytes, names: Mapping[str, str], path: tuple[str, ...] = REQUEST_MODEL) -> bytes:
    """``line`` with the string at ``path`` replaced by ``names[value]`` where the value is a key of
    ``names``; the line itself where none is. NotEditableError if the line is not a JSON object."""
    edits: list[tuple[int, int, bytes]] = []
    for start, end in _value_spans(line, path):
        if line[start : start + 1] != b'"':
            continue
        value = orjson.loads(line[start:end])
        if value in names:
            edits.append((start, end, orjson.dumps(names[value])))
    if not edits:
        return line
    pieces, last = [], 0
    for start, end, data in edits:
        pieces += [line[last:start], data]
        last = end
    return b"".join([*pieces, line[last:]])


def model_of(line: bytes, path: tuple[str, ...] = REQUEST_MODEL) -> str | None:
    """The first string at ``path`` in ``line``, decoded; None if there is none."""
    for start, end in _value_spans(line, path):
        if line[start : start + 1] == b'"':
            value = orjson.loads(line[start:end])
            return value if isinstance(value, str) else None
    return None


def rename_part(path: Path, names: Mapping[str, str]) -> int | None:
    """Rewrite a part file's lines with their model renamed, atomically; its new size, or None when
    nothing needed renaming (the file is left alone). Every line of a part names the same model
    (validation), so the first line decides; a renamed part is renamed no further, as no name the
    map gives is itself one of its keys (providers.py checks), so a retry leaves it as it is."""
    with open(path, "rb") as fh:
        first = fh.readline()
        model = model_of(first) if first.strip(_SPACE) else None
        if model is None or names.get(model, model) == model:
            return None
        fh.seek(0)
        size = 0
        with atomic_writer(path) as out:
            for line in fh:
                data = renamed(line, names)
                out.write(data)
                size += len(data)
    return size


def echoed_names(names: Mapping[str, str], model: str | None) -> dict[str, str]:
    """Name sent -> the model a job's lines named, for undoing the map in its results."""
    if model is None or model not in names or names[model] == model:
        return {}
    return {names[model]: model}


def _value_spans(line: bytes, path: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where the values at ``path`` (member names, one per nesting level) are; only objects are
    walked into, so a value of another type at an inner level is skipped."""
    i = 0
    while i < len(line) and line[i] in _SPACE:
        i += 1
    spans = [(i, len(line))]
    for depth, key in enumerate(path):
        objects = [start for start, _ in spans if depth == 0 or line[start : start + 1] == b"{"]
        spans = [span for start in objects for span in member_spans(line, start, key)]
    return spans
