"""Bodies checked per endpoint, and identical problems reported once with their count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.intake.body_rules import body_problem, inferred_url
from daemon.intake.reports import validation_lines
from daemon.intake.validation import validate_file

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("url", "body", "fragment"),
    [
        ("/v1/chat/completions", {"model": "m"}, "body.messages is missing"),
        ("/v1/chat/completions", {"model": "m", "messages": []}, "body.messages is empty"),
        ("/v1/chat/completions", {"model": "m", "messages": "hi"}, "must be a list of objects"),
        ("/v1/chat/completions", {**CHAT, "stream": True}, "cannot stream"),
        ("/v1/embeddings", {"model": "e", "messages": [{"role": "user", "content": "x"}], "input": "x"}, "messages"),
        ("/v1/embeddings", {"model": "e"}, "body.input is missing"),
        ("/v1/embeddings", {"model": "e", "input": ["a"] * 2049}, "2,049 inputs"),
        ("/v1/embeddings", {"model": "e", "input": ["a", ""]}, "empty input"),
        ("/v1/responses", {"model": "m", "input": "x", "n": 2}, "body.n (2) is not a parameter"),
        ("/v1/responses", {"model": "m", "messages": [{}], "input": "x"}, "belongs on /v1/chat/completions"),
        ("/v1/completions", {"model": "m"}, "body.prompt is missing"),
        ("/v1/moderations", {"model": "m"}, "body.input is missing"),
        ("/chat/completions", {"model": "m"}, "body.messages is missing"),  # Azure's form
    ],
)
def test_each_endpoint_rule_names_the_field(url: str, body: dict[str, object], fragment: str) -> None:
    problem = body_problem(url, body)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/chat/completions", {**CHAT, "n": 3, "stream": False}),
        ("/v1/embeddings", {"model": "e", "input": [[1, 2, 3]] * 3}),
        ("/v1/responses", {"model": "m", "input": [{"role": "user", "content": "x"}]}),
        ("/v1/completions", {"model": "m", "prompt": "x", "n": 2}),
        ("/v1/moderations", {"model": "omni-moderation-latest", "input": "x"}),
        ("/v1/videos", {"model": "sora", "anything": 1}),
    ],
)
def test_bodies_the_service_takes_pass(url: str, body: dict[str, object]) -> None:
    assert body_problem(url, body) is None


@pytest.mark.parametrize(
    ("body", "url"),
    [
        (CHAT, "/v1/chat/completions"),
        ({"model": "text-embedding-3-small", "input": "x"}, "/v1/embeddings"),
        ({"model": "omni-moderation-latest", "input": "x"}, "/v1/moderations"),
        ({"model": "gpt-4.1", "input": "x"}, "/v1/responses"),
        ({"model": "gpt-3.5-turbo-instruct", "prompt": "x"}, "/v1/completions"),
        ({"model": "dall-e-3", "prompt": "x"}, "/v1/images/generations"),
        ({"model": "m"}, None),
    ],
)
def test_the_url_is_inferred_only_where_the_body_says(body: dict[str, object], url: str | None) -> None:
    assert inferred_url(body) == url


def test_validate_finds_a_body_problem_with_its_line(tmp_path: Path) -> None:
    good = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {"model": "e", "input": "x"}}
    chat_on_embeddings = {**good, "custom_id": "b", "body": {"model": "e", "messages": [], "input": "x"}}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(chat_on_embeddings) + "\n")
    findings = validate_file(path)
    assert [n for n, _ in findings.problems] == [2]
    assert "body.messages is not a parameter of /v1/embeddings" in findings.problems[0][1]


def test_250_bare_bodies_are_one_problem_with_the_wrap_command(tmp_path: Path) -> None:
    path = tmp_path / "blog.jsonl"
    path.write_text("".join(json.dumps(CHAT) + "\n" for _ in range(250)))
    findings = validate_file(path)
    lines = validation_lines(findings, "blog.jsonl")
    assert findings.problem_count == 250
    assert len(lines) == 2, lines
    assert lines[0].startswith("all 250 lines: this line is a bare request body")
    assert "/v1/..." not in lines[0]  # a made-up url beside chat bodies misled: the Fix names the real one
    assert "batchd wrap blog.jsonl --url /v1/chat/completions -o blog.jsonl" in lines[1]


def test_some_repeated_problems_show_their_first_lines_and_count(tmp_path: Path) -> None:
    good = {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": CHAT}
    rows = [json.dumps({**good, "custom_id": f"r{n}", "method": "GET" if n % 2 else "POST"}) for n in range(20)]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n")
    lines = validation_lines(validate_file(path))
    assert lines == ["10 lines (2, 4, 6, 8, 10 and 5 more): method must be \"POST\" (got 'GET')"]


def test_a_pretty_printed_array_is_named_once(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps([CHAT, CHAT, CHAT], indent=2))
    findings = validate_file(path)
    assert findings.problem_count == 1
    lines = validation_lines(findings, "requests.jsonl")
    assert lines[0].startswith("this file is one JSON array, not JSON Lines")
    assert "batchd wrap requests.jsonl" in lines[1]


def test_a_one_line_array_of_requests_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps([CHAT, CHAT]) + "\n")
    assert validate_file(path).problems == [(0, validation_lines(validate_file(path))[0])]
