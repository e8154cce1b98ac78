"""Names as a terminal shows them: controls escaped, everything else left alone."""

from __future__ import annotations

import pytest

from daemon.display import printable


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain.jsonl", "plain.jsonl"),
        ("café 日本.jsonl", "café 日本.jsonl"),
        ("a\x1b[2Jb.jsonl", "a\\x1b[2Jb.jsonl"),
        ("line\nbreak\r.jsonl", "line\\nbreak\\r.jsonl"),
        ("tab\tbell\x07del\x7fc1\x9b.jsonl", "tab\\tbell\\x07del\\x7fc1\\x9b.jsonl"),
        ("invoice\u202egpj.jsonl", "invoice\\u202egpj.jsonl"),
        ("iso\u2066late\u2069", "iso\\u2066late\\u2069"),
    ],
)
def test_printable_escapes_only_control_and_direction_characters(name: str, shown: str) -> None:
    assert printable(name) == shown
