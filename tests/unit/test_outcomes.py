"""Every terminal status ends with results for every request and the input in the right place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from daemon.results.failures import MAX_CODES, results_failures
from daemon.results.merger import Segment, merge
from tests.support import request_file


def _segment(tmp_path: Path, ran_lines: int, ran_reported: int | None) -> Segment:
    part = tmp_path / "0.0.jsonl"
    part.write_text(request_file(3))
    output = tmp_path / "out.jsonl"
    line = {"custom_id": "r0", "response": {"status_code": 200, "body": {}}, "error": None}
    output.write_text(json.dumps(line) + "\n" if ran_lines else "")
    return Segment(part, [output], "cancelled", ran_reported)


def test_a_line_of_another_request_proves_nothing(tmp_path: Path) -> None:
    segment = _segment(tmp_path, 1, 1)
    segment.downloads[0].write_text(segment.downloads[0].read_text().replace('"r0"', '"not-in-input"'))
    dest = tmp_path / "results.jsonl"
    assert merge([segment], dest) == {"not_run": 3}
    assert {json.loads(x)["error"]["code"] for x in dest.read_text().splitlines()} == {"result_missing"}


@pytest.mark.parametrize(
    ("ran_reported", "code", "message"),
    [
        (1, "batch_cancelled", "The batch was cancelled before this request ran."),
        (
            2,
            "result_missing",
            "No result was returned; the batch was cancelled. It may have run: see problems in summary.json.",
        ),
        (
            None,
            "result_missing",
            "No result was returned; the batch was cancelled. It may have run: see problems in summary.json.",
        ),
    ],
)
def test_missing_lines_claim_never_ran_only_when_the_counts_prove_it(
    tmp_path: Path, ran_reported: int | None, code: str, message: str
) -> None:
    dest = tmp_path / "results.jsonl"
    counts = merge([_segment(tmp_path, 1, ran_reported)], dest)
    assert counts == {"succeeded": 1, "not_run": 2}
    lines = [json.loads(x) for x in dest.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == ["r0", "r1", "r2"]
    assert [x["error"] for x in lines[1:]] == [{"code": code, "message": message}] * 2


def test_failures_read_codes_and_samples_from_every_line_shape(tmp_path: Path) -> None:
    def line(response: Any = None, error: Any = None) -> str:
        return json.dumps({"custom_id": "x", "response": response, "error": error}) + "\n"

    limited = {"error": {"code": "rate_limit_exceeded", "message": "Slow down.", "type": "requests"}}
    results = tmp_path / "results.jsonl"
    results.write_text(
        line({"status_code": 429, "body": limited})
        + line({"status_code": 429, "body": json.dumps(limited)})  # a JSON-string body
        + line({"status_code": 500, "body": {"error": {"type": "server_error", "message": "Oops."}}})
        + line({"status_code": 502, "body": "<html>bad gateway</html>"})
        + line(error={"code": "batch_expired", "message": "Expired."})
        + line(error="boom")
        + line({"status_code": 200, "body": {}})  # succeeded: not a failure
    )
    assert results_failures(results) == {
        "rate_limit_exceeded": {"count": 2, "sample": "Slow down."},
        "server_error": {"count": 1, "sample": "Oops."},
        "http_502": {"count": 1, "sample": "The endpoint answered HTTP 502 without an error object."},
        "batch_expired": {"count": 1, "sample": "Expired."},
        "error": {"count": 1, "sample": "boom"},
    }


def test_failure_codes_are_bounded(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    with results.open("w") as fh:
        for i in range(MAX_CODES + 20):
            fh.write(json.dumps({"custom_id": f"c{i}", "response": None, "error": {"code": f"code-{i}"}}) + "\n")
    failures = results_failures(results)
    assert len(failures) == MAX_CODES + 1
    assert failures["other"]["count"] == 20
