"""batchd wrap: bare request bodies and JSON arrays become Batch API lines with stable custom_ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.intake.bare_bodies import WrapError, wrap_file
from daemon.intake.validation import validate_file

# The blog's own input lines (bare bodies, no custom_id, method or url).
BLOG = (
    '{"model": "gpt-4-turbo", "messages": [{"role": "system", "content": "你是一个写作助手"}, '
    '{"role": "user", "content": "写一首关于春天的诗"}]}\n'
    '{"model": "gpt-4-turbo", "messages": [{"role": "system", "content": "你是一个写作助手"}, '
    '{"role": "user", "content": "解释量子力学的基本原理"}]}\n'
    "\n"
    '{"model": "gpt-4-turbo", "messages": [{"role": "user", "content": "写一段关于人工智能的演讲稿"}]}\n'
)


def test_the_blog_lines_are_wrapped_in_place_and_then_pass(tmp_path: Path) -> None:
    path = tmp_path / "blog.jsonl"
    path.write_text(BLOG, encoding="utf-8")
    assert not validate_file(path).ok
    assert main(["wrap", str(path), "-o", str(path)]) == 0
    lines = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    assert [line["custom_id"] for line in lines] == ["line-1", "line-2", "line-4"]  # numbers of the original lines
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    assert lines[2]["body"]["messages"][0]["content"] == "写一段关于人工智能的演讲稿"
    findings = validate_file(path)
    assert findings.ok, findings.problems
    assert findings.requests == 3


def test_wrapping_is_deterministic_and_keeps_requests(tmp_path: Path) -> None:
    request = {"custom_id": "mine", "method": "POST", "url": "/v1/embeddings", "body": {"model": "e", "input": "x"}}
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(request) + "\n" + json.dumps({"model": "text-embedding-3-small", "input": "y"}) + "\n")
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    done = wrap_file(source, first, None, "emb-")
    wrap_file(source, second, None, "emb-")
    assert first.read_bytes() == second.read_bytes()
    assert (done.wrapped, done.kept, done.url) == (1, 1, "/v1/embeddings")
    assert [json.loads(t)["custom_id"] for t in first.read_text().splitlines()] == ["mine", "emb-2"]


def test_a_pretty_printed_array_of_bodies_becomes_json_lines(tmp_path: Path) -> None:
    source = tmp_path / "requests.json"
    source.write_text(json.dumps([{"model": "gpt-4.1", "input": f"q{n}"} for n in range(3)], indent=2))
    dest = tmp_path / "requests.jsonl"
    done = wrap_file(source, dest, "/v1/responses", "q")
    assert done.wrapped == 3
    assert [json.loads(t)["custom_id"] for t in dest.read_text().splitlines()] == ["q1", "q2", "q3"]
    assert validate_file(dest).ok


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"model": "m"}\n', "give --url"),
        ('{"model": "m", "messages": []}\n{"model": "m", "prompt": "x"}\n', "one file goes to one endpoint"),
        ('{"model": "m", "messages": []}\n{not json\n', "line 2 is not valid JSON"),
        ('{"model": "m", "messages": []}\n[1]\n', "line 2 is neither"),
    ],
)
def test_what_cannot_be_wrapped_is_named_and_nothing_is_written(tmp_path: Path, content: str, fragment: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(content)
    with pytest.raises(WrapError, match=fragment):
        wrap_file(source, source, None)
    assert source.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_wrap_writes_to_standard_output_by_default(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["wrap", str(source), "--url", "/v1/chat/completions", "--id-prefix", "p"]) == 0
    out, err = capsysbinary.readouterr()
    assert json.loads(out)["custom_id"] == "p1"
    assert b"wrapped 1 request(s) for /v1/chat/completions" in err
