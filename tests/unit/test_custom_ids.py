"""Byte-exact custom_id edits: only the top-level custom_id's value changes, every other byte stays."""

from __future__ import annotations

import json

import orjson
import pytest

from daemon.intake.custom_ids import NotEditableError, with_prefix, without_prefix
from daemon.results.unpacker import own_line

BODY = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
# (text before the custom_id's value, the value as written, text after it): the expected edit is
# built from these pieces, never by the scanner under test.
LINES = [
    ('{"custom_id": ', '"a\\"b"', f', "method": "POST", "url": "/v1/chat/completions", "body": {BODY}}}'),
    ('{"custom_id":', '"caf\\u00e9-\\ud83d\\ude00"', f',"method":"POST","url":"/v1/chat/completions","body":{BODY}}}'),
    # the key itself written with an escape: still the top-level custom_id
    ('{"custom\\u005fid" :\t', '"esc"', f' , "method": "POST", "url": "/v1/chat/completions", "body": {BODY}}}'),
    # custom_id last, after a body holding "custom_id" as text, as a nested key, and brackets in strings
    (
        '{"body": {"model": "m", "seed": 123456789012345678901234567890, "temperature": 1.0, "n": 1e5,'
        ' "text": "say \\"custom_id\\": \\"x\\" {[", "meta": {"custom_id": "inner", "list": [{"custom_id": 1}]}},'
        ' "url": "/v1/chat/completions", "method": "POST", "custom_id": ',
        '"last\\\\"',
        "}",
    ),
    ('  {  "method" : "POST" ,"custom_id"  :  ', '"x/\\/y"', f'  ,"url":"/v1/embeddings","body":{BODY}   }}  '),
]


@pytest.mark.parametrize(("before", "value", "after"), LINES)
def test_only_the_custom_ids_bytes_get_the_prefix(before: str, value: str, after: str) -> None:
    line = (before + value + after).encode()
    edited = with_prefix(line, "12:")
    assert edited == (before + '"12:' + value[1:] + after).encode(), "every other byte as it was"
    original = json.loads(line)
    assert orjson.loads(edited)["custom_id"] == "12:" + original["custom_id"]
    assert json.loads(edited)["body"] == original["body"], "nested custom_ids and strings untouched"
    assert without_prefix(edited, "12:") == line, "the unpacker takes out exactly what was put in"


def test_a_duplicated_top_level_key_is_prefixed_wherever_it_appears() -> None:
    line = b'{"custom_id": "a", "body": {"custom_id": "n"}, "custom_id": "b"}'
    edited = with_prefix(line, "0:")
    assert edited == b'{"custom_id": "0:a", "body": {"custom_id": "n"}, "custom_id": "0:b"}'
    assert orjson.loads(edited)["custom_id"] == "0:b"


def test_an_output_line_whose_id_was_escaped_otherwise_is_not_edited_in_place() -> None:
    assert without_prefix(b'{"custom_id": "\\u0030:r1", "response": null}', "0:") is None
    assert without_prefix(b'{"custom_id": "1:r1"}', "0:") is None


@pytest.mark.parametrize(
    "line",
    [b"[1, 2]", b'{"custom_id": 5}', b'{"custom_id" 5}', b'{"body": {"custom_id": "x"}', b'{"a": "unterminated}'],
)
def test_what_cannot_be_edited_in_place_says_so(line: bytes) -> None:
    with pytest.raises(NotEditableError):
        with_prefix(line, "0:")


def test_a_line_without_a_top_level_custom_id_cannot_be_prefixed() -> None:
    with pytest.raises(NotEditableError):
        with_prefix(b'{"body": {"custom_id": "nested only"}}', "0:")


def test_an_output_line_escaped_otherwise_by_the_service_still_gets_its_own_id() -> None:
    raw = b'{"custom_id": "\\u0030:caf\\u00e9", "response": {"body": {"n": 1.0}}}\n'
    own = own_line(raw)
    assert orjson.loads(own) == {"custom_id": "caf\u00e9", "response": {"body": {"n": 1.0}}}
    assert own_line(b'{"custom_id":  "0:r1" ,"x":1.0}\n') == b'{"custom_id":  "r1" ,"x":1.0}\n'
