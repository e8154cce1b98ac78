"""The model map's byte rewrite: only the model value's bytes change, in requests and in results."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from daemon.intake.model_names import (
    RESULT_MODEL,
    NotEditableError,
    echoed_names,
    model_of,
    rename_part,
    renamed,
)

NAMES = {"gpt-4o-mini": "my-gpt4o-mini-batch"}


def test_only_the_model_value_changes_numbers_order_and_spacing_survive() -> None:
    line = (
        b'{"url": "/chat/completions",  "custom_id":"a","body":{"temperature":1e400,'
        b'"seed":123456789012345678901234567890, "model" :  "gpt-4o-mini","max_tokens":1.50},"method":"POST"}\n'
    )
    expected = line.replace(b'"gpt-4o-mini"', b'"my-gpt4o-mini-batch"')
    assert renamed(line, NAMES) == expected


def test_an_escaped_model_name_is_matched_decoded() -> None:
    line = b'{"custom_id":"a","body":{"model":"gpt\\u002d4o-mini","x":"\\"q\\""}}'
    assert renamed(line, NAMES) == b'{"custom_id":"a","body":{"model":"my-gpt4o-mini-batch","x":"\\"q\\""}}'


def test_a_new_name_needing_escapes_is_written_as_valid_json() -> None:
    names = {"m": 'dep"lo\\y\u00e9'}
    out = renamed(b'{"body":{"model":"m"}}', names)
    assert orjson.loads(out)["body"]["model"] == 'dep"lo\\y\u00e9'


def test_models_elsewhere_in_the_line_are_not_touched() -> None:
    line = (
        b'{"model":"gpt-4o-mini","custom_id":"gpt-4o-mini","body":{"messages":[{"model":"gpt-4o-mini"}],'
        b'"metadata":{"model":"gpt-4o-mini"},"content":"\\"model\\": \\"gpt-4o-mini\\"","model":"gpt-4o-mini"}}'
    )
    out = renamed(line, NAMES)
    assert out.count(b"my-gpt4o-mini-batch") == 1
    assert orjson.loads(out)["body"]["model"] == "my-gpt4o-mini-batch"
    assert out.replace(b"my-gpt4o-mini-batch", b"gpt-4o-mini") == line


def test_a_model_not_in_the_map_is_sent_as_is() -> None:
    line = b'{"body":{"model":"gpt-4.1"}}\n'
    assert renamed(line, NAMES) is line


def test_a_line_that_is_not_an_object_cannot_be_edited() -> None:
    with pytest.raises(NotEditableError):
        renamed(b"[1, 2]", NAMES)


def test_results_get_the_users_model_back_only_where_the_service_echoed_the_deployment() -> None:
    back = echoed_names(NAMES, "gpt-4o-mini")
    assert back == {"my-gpt4o-mini-batch": "gpt-4o-mini"}
    echoed = b'{"id":"x","custom_id":"a","response":{"status_code":200,"body":{"model":"my-gpt4o-mini-batch",'
    echoed += b'"choices":[{"content_filter_results":{"hate":{"filtered":false}}}]}},"error":null}\n'
    assert renamed(echoed, back, RESULT_MODEL) == echoed.replace(b"my-gpt4o-mini-batch", b"gpt-4o-mini")
    versioned = b'{"response":{"body":{"model":"gpt-4o-mini-2024-07-18"}}}'
    assert renamed(versioned, back, RESULT_MODEL) is versioned
    string_body = b'{"response":{"body":"{\\"model\\":\\"my-gpt4o-mini-batch\\"}"}}'
    assert renamed(string_body, back, RESULT_MODEL) is string_body


def test_no_echo_map_without_a_rename() -> None:
    assert echoed_names(NAMES, "gpt-4.1") == {}
    assert echoed_names({"m": "m"}, "m") == {}
    assert echoed_names(NAMES, None) == {}


def test_a_part_file_is_renamed_once_and_left_alone_after(tmp_path: Path) -> None:
    part = tmp_path / "0.jsonl"
    lines = [b'{"custom_id":"r%d","body":{"model":"gpt-4o-mini","n":1e400}}\n' % i for i in range(3)]
    part.write_bytes(b"".join(lines))
    size = rename_part(part, NAMES)
    expected = b"".join(lines).replace(b"gpt-4o-mini", b"my-gpt4o-mini-batch")
    assert part.read_bytes() == expected
    assert size == len(expected)
    assert rename_part(part, NAMES) is None
    assert part.read_bytes() == expected
    assert model_of(expected.splitlines()[0]) == "my-gpt4o-mini-batch"
    assert rename_part(part, {"my-gpt4o-mini-batch": "my-gpt4o-mini-batch"}) is None, "a name kept is no rename"
