"""Usage is read from a response body sent as an object or as a JSON string; unreadable usage is
unknown (null), never 0, and an incomplete figure gets no cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.status import render_table
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.pricing import DEFAULT_PRICES
from daemon.results.usage import TokenUsage, add_line, batches_usage, results_usage
from tests.support import FAST, Harness, fast_settings, request_file

CHAT_USAGE = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def _line(body: Any, status: int = 200) -> bytes:
    return json.dumps({"custom_id": "x", "response": {"status_code": status, "body": body}, "error": None}).encode()


def test_a_json_string_body_is_read_like_an_object() -> None:
    usage = TokenUsage()
    add_line(usage, _line(json.dumps({"usage": CHAT_USAGE})))
    add_line(usage, _line({"usage": CHAT_USAGE}))
    assert usage.as_dict() == {"prompt_tokens": 6, "completion_tokens": 8, "total_tokens": 14}
    assert usage.report() == {**usage.as_dict(), "lines_with_usage": 2, "lines_succeeded": 2}
    assert usage.cost("gpt-4o-mini", DEFAULT_PRICES) == pytest.approx((6 * 0.075 + 8 * 0.30) / 1e6)


@pytest.mark.parametrize("body", [{"choices": []}, json.dumps({"choices": []}), "not json {", None, 5])
def test_succeeded_lines_without_usage_are_unknown_not_zero(body: Any) -> None:
    usage = TokenUsage()
    add_line(usage, _line(body))
    assert usage.report() is None
    assert usage.cost("gpt-4o-mini", DEFAULT_PRICES) is None


def test_partial_usage_says_over_how_many_lines_and_has_no_cost() -> None:
    usage = TokenUsage()
    add_line(usage, _line({"usage": CHAT_USAGE}))
    add_line(usage, _line({"choices": []}))
    assert usage.report() == {**CHAT_USAGE, "lines_with_usage": 1, "lines_succeeded": 2}
    assert usage.cost("gpt-4o-mini", DEFAULT_PRICES) is None


def test_nothing_succeeded_is_zero_used_not_unknown() -> None:
    usage = TokenUsage()
    add_line(usage, _line({"error": {"code": "bad", "message": "no"}}, status=400))
    add_line(usage, b'{"custom_id": "y", "response": null, "error": {"code": "batch_expired"}}')
    assert usage.report() == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} | {
        "lines_with_usage": 0,
        "lines_succeeded": 0,
    }
    assert usage.cost("gpt-4o-mini", DEFAULT_PRICES) == 0.0


def test_usage_read_apart_sums_to_the_usage_read_together(tmp_path: Path) -> None:
    """An input split by model: the summary's total is its models' usage summed, not read again."""
    lines = [_line({"usage": CHAT_USAGE}), _line({}), _line(None, status=500)]
    lines.append(json.dumps({"custom_id": "a", "result": {"type": "succeeded", "message": {"usage": {
        "input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 9}}}}).encode())  # fmt: skip
    for n, chunk in enumerate([lines[:2], lines[2:]]):
        (tmp_path / f"{n}.jsonl").write_bytes(b"".join(line + b"\n" for line in chunk))
    (tmp_path / "all.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    summed = results_usage(tmp_path / "0.jsonl")
    summed.absorb(results_usage(tmp_path / "1.jsonl"))
    assert summed == results_usage(tmp_path / "all.jsonl")
    assert summed.cache_reported and summed.counted == 2 and summed.expected == 3


def test_results_file_without_usage_reports_null(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_bytes(_line({"choices": []}) + b"\n" + _line(json.dumps({"choices": []})) + b"\n")
    usage = results_usage(results)
    assert usage.report() is None and usage.cost("gpt-4o-mini", DEFAULT_PRICES) is None


def test_batches_without_usage_are_unknown() -> None:
    usage = batches_usage([{"id": "batch_1", "status": "in_progress"}])
    assert not usage.known and usage.cost("gpt-4o-mini", DEFAULT_PRICES) is None
    row: dict[str, Any] = {
        "file": "a.jsonl",
        "state": "active",
        "pack": None,
        "batches": [],
        "requests_done": 0,
        "requests_total": 1,
        "outcomes": None,
        "usage": None,
        "estimated_cost_usd": None,
        "age_seconds": 1.0,
    }
    assert "?" in render_table([row]).splitlines()[1].split()  # unknown tokens, not a blank 0
    partial = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "lines_with_usage": 1}
    row["usage"] = {**partial, "lines_succeeded": 2}
    assert "7+" in render_table([row]).splitlines()[1].split()  # a lower bound
    row["usage"] = {**partial, "lines_succeeded": 1}
    assert "7" in render_table([row]).splitlines()[1].split()


def test_parts_not_yet_submitted_leave_usage_known() -> None:
    counted = {"input_tokens": 4, "output_tokens": 3, "total_tokens": 7}
    usage = batches_usage([{"id": "batch_1", "usage": counted}, {}])
    assert usage.known and usage.complete and usage.as_dict()["total_tokens"] == 7


@pytest.fixture(name="string_emulator")
def string_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(
        **FAST,  # type: ignore[arg-type]
        data_dir=tmp_path / "emulator-data",
        string_bodies=True,
        request_error_rate=0.5,
    )
    with EmulatorServer(settings) as server:
        yield server


def test_string_bodies_from_the_server_are_counted(tmp_path: Path, string_emulator: EmulatorServer) -> None:
    root = tmp_path / "root"
    root.mkdir()
    harness = Harness(fast_settings(root, string_emulator.base_url), string_emulator).start()
    try:
        harness.drop("strings.jsonl", request_file(8))
        harness.wait_job("strings.jsonl")
        results = harness.results("strings.jsonl")
        summary = harness.summary("strings.jsonl")
    finally:
        harness.stop()
    assert all(isinstance(r["response"]["body"], str) for r in results)  # the fault was really on
    [batch] = string_emulator.batches()
    served = batch["usage"]
    assert summary["usage"]["prompt_tokens"] == served["input_tokens"] > 0
    assert summary["usage"]["completion_tokens"] == served["output_tokens"] > 0
    # One vocabulary, the Batch API's, in the summed usage as in each batch's (the old names stay as aliases).
    assert summary["usage"]["input_tokens"] == served["input_tokens"]
    assert summary["usage"]["output_tokens"] == served["output_tokens"]
    assert summary["batches"][0]["usage"]["input_tokens"] == served["input_tokens"]
    timings = summary["timings"]
    for name in ("claimed_at", "first_submitted_at", "collected_at"):  # epoch seconds with an ISO 8601 twin
        when = datetime.fromisoformat(timings[f"{name}_iso"])
        assert when.tzinfo is not None and when.utcoffset() == timedelta(0)
        assert abs(when.timestamp() - timings[name]) < 1
    assert summary["estimated_cost_usd"] > 0
    failed = summary["outcomes"]["failed"]
    assert 0 < failed < 8
    # The error inside a string body is read too.
    assert summary["failures"]["emulated_request_error"]["count"] == failed
