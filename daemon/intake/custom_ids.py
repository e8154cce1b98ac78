"""Byte-exact custom_id edits: a shared batch prefixes each request's custom_id with its input's slot.

Parsing a line and serialising it again would rewrite the request (a big integer becomes a float,
key order, spacing and escapes change), so the same input would send other bytes in company than
alone. Instead a small scanner finds the top-level ``"custom_id"`` key's string value in the line's
own bytes and only the slot prefix is inserted into it (or taken out of an output line). The
scanner walks the object's top-level members and skips nested values as a whole, so a
``"custom_id"`` inside a body string or a nested object is never touched; keys are compared
decoded, so an escaped key (``"custom\\u005fid"``) counts. Every occurrence of a duplicated key
is edited, so whichever one a parser keeps carries the prefix.
"""

from __future__ import annotations

import re

import orjson

KEY = "custom_id"
_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"', re.DOTALL)
_STRUCTURE = re.compile(rb'["{}\[\]]')
_SCALAR_END = re.compile(rb"[,}\]\s]")
_SPACE = b" \t\r\n"


class NotEditableError(ValueError):
    """The line is not a JSON object with a string custom_id at its top level."""


def value_spans(line: bytes) -> list[tuple[int, int]]:
    """Where every top-level custom_id's string value is: (opening quote, after closing quote)."""
    spans = member_spans(line, _skip_space(line, 0), KEY)
    if any(line[start : start + 1] != b'"' for start, _ in spans):
        raise NotEditableError("custom_id is not a string")
    return spans


def member_spans(line: bytes, i: int, key: str) -> list[tuple[int, int]]:
    """Where the values of the members named ``key`` of the object at byte ``i`` are (value's first
    byte, after its last); the object's other members, nested ones included, are skipped whole."""
    if line[i : i + 1] != b"{":
        raise NotEditableError("not a JSON object")
    spans: list[tuple[int, int]] = []
    i = _skip_space(line, i + 1)
    if line[i : i + 1] == b"}":
        return spans
    while True:
        key_end = _string_end(line, i)
        name = orjson.loads(line[i:key_end])
        i = _skip_space(line, key_end)
        if line[i : i + 1] != b":":
            raise NotEditableError(f"expected ':' at byte {i}")
        start = _skip_space(line, i + 1)
        end = _value_end(line, start)
        if name == key:
            spans.append((start, end))
        i = _skip_space(line, end)
        if line[i : i + 1] == b"}":
            return spans
        if line[i : i + 1] != b",":
            raise NotEditableError(f"expected ',' or '}}' at byte {i}")
        i = _skip_space(line, i + 1)


def with_prefix(line: bytes, prefix: str) -> bytes:
    """``line`` with ``prefix`` put in front of its custom_id's value, every other byte kept.

    The prefix must need no escaping in a JSON string (the slot prefix is digits and a colon)."""
    spans = value_spans(line)
    if not spans:
        raise NotEditableError("no custom_id at the top level")
    data = prefix.encode("ascii")
    pieces, last = [], 0
    for start, _ in spans:
        pieces += [line[last : start + 1], data]
        last = start + 1
    return b"".join([*pieces, line[last:]])


def without_prefix(line: bytes, prefix: str) -> bytes | None:
    """``line`` with ``prefix`` taken out of its custom_id's value, every other byte kept; None if
    the value does not start with those very bytes (the service escaped it differently)."""
    spans = value_spans(line)
    data = prefix.encode("ascii")
    if not spans or any(line[start + 1 : start + 1 + len(data)] != data for start, _ in spans):
        return None
    pieces, last = [], 0
    for start, _ in spans:
        pieces.append(line[last : start + 1])
        last = start + 1 + len(data)
    return b"".join([*pieces, line[last:]])


def _skip_space(line: bytes, i: int) -> int:
    while i < len(line) and line[i] in _SPACE:
        i += 1
    return i


def _string_end(line: bytes, i: int) -> int:
    match = _STRING.match(line, i)
    if match is None:
        raise NotEditableError(f"expected a string at byte {i}")
    return match.end()


def _value_end(line: bytes, i: int) -> int:
    first = line[i : i + 1]
    if first == b'"':
        return _string_end(line, i)
    if first in (b"{", b"["):
        return _container_end(line, i)
    match = _SCALAR_END.search(line, i)
    end = match.start() if match else len(line)
    if end == i:
        raise NotEditableError(f"expected a value at byte {i}")
    return end


def _container_end(line: bytes, i: int) -> int:
    """Skip a nested object or array as a whole, strings included (they may hold brackets)."""
    depth = 0
    while True:
        match = _STRUCTURE.search(line, i)
        if match is None:
            raise NotEditableError("unbalanced brackets")
        char, i = match.group(), match.start()
        if char == b'"':
            i = _string_end(line, i)
            continue
        depth += 1 if char in (b"{", b"[") else -1
        i += 1
        if depth == 0:
            return i
