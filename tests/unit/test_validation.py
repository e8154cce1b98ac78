"""Validation: every rule, with the line number it reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon import limits
from daemon.intake.validation import BatchLimits, validate_file

BODIES: dict[str, dict[str, object]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
    "/v1/embeddings": {"input": "hi"},
    "/v1/responses": {"input": "hi"},
}


def line(cid: object = "a", url: str = "/v1/chat/completions", model: str = "m", **extra: object) -> str:
    body = {"model": model, **BODIES.get(url if url.startswith("/v1/") else "/v1" + url, {})}
    record: dict[str, object] = {"custom_id": cid, "method": "POST", "url": url, "body": body}
    record.update(extra)
    return json.dumps(record)


def check(tmp_path: Path, content: bytes | str, limits: BatchLimits | None = None) -> list[tuple[int, str]]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    findings = validate_file(path, limits)
    return findings.problems


def test_good_file_reports_shape(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text(line("a") + "\n" + line("b") + "\n")
    findings = validate_file(path)
    assert findings.ok
    assert (findings.requests, findings.endpoint, findings.model) == (2, "/v1/chat/completions", "m")


@pytest.mark.parametrize(
    ("content", "expected_line", "fragment"),
    [
        ("{not json}\n", 1, "not valid JSON"),
        ('{"model": "gpt-4-turbo", "messages": []}\n', 1, "bare request body"),
        (line("a") + "\n[1, 2]\n", 2, "must be a JSON object, got an array"),
        (
            json.dumps({"method": "POST", "url": "/v1/embeddings", "body": {"model": "m"}}) + "\n",
            1,
            "custom_id is missing",
        ),
        (line(5) + "\n", 1, "custom_id must be a string"),
        (line("") + "\n", 1, "custom_id is empty"),
        (line("a") + "\n" + line("a") + "\n", 2, "already used on line 1"),
        (line("a").replace('"POST"', '"GET"') + "\n", 1, 'method must be "POST"'),
        (line("a") + "\n" + line("b", url="/v1/embeddings") + "\n", 2, "differs from '/v1/chat/completions' on line 1"),
        (line("a", url="/v1/audio/speech") + "\n", 1, "not a Batch API endpoint"),
        (json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings"}) + "\n", 1, "body is missing"),
        (
            json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": [1]}) + "\n",
            1,
            "body must be a JSON object",
        ),
        (
            json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}) + "\n",
            1,
            "body.model is missing",
        ),
        (line("a") + "\n" + line("b", model="other") + "\n", 2, "one file, one model"),
        ("", 0, "the file is empty"),
        ("\n  \n\n", 0, "only blank lines"),
        ("\ufeff" + line("a") + "\n", 1, "byte order mark"),
        (b'{"custom_id": "\xff"}\n', 1, "not valid UTF-8"),
        (line("a") + "\n" + line("b")[:20], 2, "not valid JSON"),
    ],
)
def test_each_rule_names_its_line(tmp_path: Path, content: str | bytes, expected_line: int, fragment: str) -> None:
    problems = check(tmp_path, content)
    assert problems, "expected a problem"
    assert problems[0][0] == expected_line
    assert fragment in problems[0][1]


def test_crlf_and_missing_final_newline_are_fine(tmp_path: Path) -> None:
    assert check(tmp_path, line("a") + "\r\n" + line("b")) == []


def test_only_first_hundred_problems_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("x\n" * 150)
    findings = validate_file(path)
    assert findings.problem_count == 150
    assert len(findings.problems) == 100


def test_line_over_the_byte_limit_is_rejected(tmp_path: Path) -> None:
    big = line("a", messages="x" * 2000)
    problems = check(tmp_path, big + "\n", BatchLimits(max_bytes=1000))
    assert "over the 1,000-byte batch limit" in problems[0][1]


def test_azure_url_forms_pass_with_an_azure_profile_and_openai_says_who_takes_them(tmp_path: Path) -> None:
    path = tmp_path / "azure.jsonl"
    path.write_text(line("a", url="/chat/completions") + "\n" + line("b", url="/chat/completions") + "\n")
    azure = validate_file(path, BatchLimits(urls=frozenset({"/v1/chat/completions", "/chat/completions"})))
    assert (azure.ok, azure.endpoint) == (True, "/chat/completions")
    refused = validate_file(path)
    assert refused.problems[0] == (
        1,
        "url '/chat/completions' is not a Batch API endpoint; use one of "
        + ", ".join(sorted(limits.ENDPOINTS))
        + " (the form without /v1 is Azure's; a profile of kind azure accepts it)",
    )
