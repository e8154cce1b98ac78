"""Kind anthropic in parts: the profile, the line checks, the batch object read as ours, the streamed
create body, the result lines, packed ids and the search for a batch whose create reply was lost."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, cast

import httpx2
import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError, MalformedReplyError, NotFoundError
from daemon.intake.anthropic_lines import ANTHROPIC_FORMAT
from daemon.intake.line_formats import format_limits, sniffed_format, validate_input
from daemon.intake.packer import _copy_prefixed, split_slot
from daemon.pricing import ModelPrice
from daemon.providers import KIND_DEFAULTS
from daemon.results.anthropic_results import absent_result
from daemon.results.failures import describe
from daemon.results.outcome import FAILED, NOT_RUN, SUCCEEDED, error_code, not_run_line, rank
from daemon.results.retry_codes import retryable_ids
from daemon.results.usage import results_usage
from daemon.service.anthropic_replies import batch_from_reply
from daemon.service.anthropic_service import BODY_CHUNK, AnthropicService, request_body
from daemon.service.batch_info import BatchInfo, RequestCounts
from daemon.service.candidate_batches import CandidatesPendingError, own_batch
from daemon.service.credentials import KeySource
from daemon.state.rows import Part
from daemon.state.states import PartState
from daemon.state.store import Store
from tests.anthropic_spec import problems as spec_problems


def line(custom_id: str = "q-1", **params: Any) -> str:
    body = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **params}
    return json.dumps({"custom_id": custom_id, "params": body}) + "\n"


def test_a_profile_of_kind_anthropic_gets_its_defaults(tmp_path: Path) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text('[providers.claude]\nkind = "anthropic"\n', encoding="utf-8")
    profile = load_settings(config, environ={}).profile("claude")
    assert profile.base_url == "https://api.anthropic.com" and profile.auth == "x-api-key"
    assert (profile.max_requests_per_batch, profile.max_bytes_per_batch) == (100_000, 256_000_000)
    assert not profile.supports_metadata and profile.supports_list and profile.supports_cancel
    assert profile.keys.env == "ANTHROPIC_API_KEY" and profile.keys.file_env == "ANTHROPIC_API_KEY_FILE"
    assert profile.api_version == "2023-06-01"  # the anthropic-version header


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('auth = "bearer"\n', "x-api-key is the only auth"),
        ('models = { "a" = "b" }\n', "model map is not applied to kind anthropic"),
    ],
)
def test_an_anthropic_profile_refuses_what_it_cannot_use(tmp_path: Path, extra: str, message: str) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text(f'[providers.claude]\nkind = "anthropic"\n{extra}', encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(config, environ={})


def problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    path = tmp_path / "in.jsonl"
    path.write_text(text, encoding="utf-8")
    return validate_input(path, format_limits(ANTHROPIC_FORMAT)).problems


def test_good_message_batches_lines_pass(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(line("a") + line("B_2-x") + line("c" * 64), encoding="utf-8")
    findings = validate_input(path, format_limits(ANTHROPIC_FORMAT))
    assert findings.ok and findings.requests == 3
    assert (findings.endpoint, findings.model) == ("/v1/messages", "claude-x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (line("has:colon"), "characters Anthropic refuses"),
        (line("x" * 65), "65 characters; Anthropic takes at most 64"),
        (line("a") + line("a"), "custom_id 'a' is already used on line 1"),
        (line(max_tokens=0), "params.max_tokens must be a whole number of 1 or more"),
        (line(messages=[]), "params.messages must be a non-empty list"),
        (line(model=5), "params.model is missing"),
        (line(stream=True), "cannot stream"),
        ('{"custom_id": "a"}\n', "params is missing"),
        ('{"custom_id": "a", "params": {}, "extra": 1}\n', "unknown top-level key(s) ['extra']"),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/messages", "body": {}}\n', "OpenAI Batch API line"),
        (line("a") + line("b", model="claude-y"), "one file, one model"),
    ],
)
def test_each_bad_line_is_named_with_its_reason(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(expected in message for _, message in found), found


def test_the_shape_of_the_first_line_picks_the_format(tmp_path: Path) -> None:
    claude, gpt = tmp_path / "c.jsonl", tmp_path / "g.jsonl"
    claude.write_text("\n" + line(), encoding="utf-8")
    gpt.write_text('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n')
    assert (sniffed_format(claude), sniffed_format(gpt)) == ("anthropic", "openai")


REPLY = {
    "id": "msgbatch_1",
    "type": "message_batch",
    "processing_status": "in_progress",
    "request_counts": {"processing": 2, "succeeded": 1, "errored": 1, "canceled": 0, "expired": 0},
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": "2025-01-02T00:00:00Z",
    "ended_at": None,
    "cancel_initiated_at": None,
    "results_url": None,
}


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, "in_progress"),
        ({"processing_status": "canceling", "cancel_initiated_at": "2025-01-01T00:01:00Z"}, "cancelling"),
        ({"processing_status": "ended", "results_url": "u"}, "completed"),
        (
            {"processing_status": "ended", "results_url": "u", "cancel_initiated_at": "2025-01-01T00:01:00Z"},
            "cancelled",
        ),
        ({"processing_status": "ended", "results_url": "u", "request_counts": {"expired": 1}}, "expired"),
    ],
)
def test_a_message_batch_is_read_in_the_daemons_statuses(changes: dict[str, Any], status: str) -> None:
    batch = batch_from_reply({**REPLY, **changes, "ended_at": "2025-01-01T00:02:00Z"}, "test")
    assert batch.status == status
    assert batch.created_at == 1735689600 and batch.endpoint == "/v1/messages"
    if status in ("completed", "cancelled", "expired"):
        assert batch.output_file_id == "u"


def test_counts_are_read_as_completed_failed_and_total() -> None:
    assert batch_from_reply(REPLY, "test").request_counts == RequestCounts(completed=1, failed=1, total=4)


@pytest.mark.parametrize(
    "changes",
    [
        {"processing_status": "done"},
        {"request_counts": {"succeeded": -1}},
        {"created_at": "yesterday"},
        {"processing_status": "ended", "results_url": None},
        {"id": 5},
    ],
)
def test_a_malformed_message_batch_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedReplyError):
        batch_from_reply({**REPLY, **changes}, "test")


def test_the_create_body_is_the_part_files_lines_as_a_json_list_of_the_announced_length(tmp_path: Path) -> None:
    part = tmp_path / "0.jsonl"
    long_text = [{"role": "user", "content": "x" * (BODY_CHUNK // 3)}]
    lines = [line(f"q{i}", messages=long_text).encode() for i in range(7)]
    part.write_bytes(b"".join(lines))
    length, chunks = request_body(part)
    pieces = list(chunks)
    body = b"".join(pieces)
    assert len(body) == length
    assert [json.dumps(r).encode() for r in json.loads(body)["requests"]] == [raw.rstrip(b"\n") for raw in lines]
    assert max(len(p) for p in pieces) <= BODY_CHUNK + max(len(raw) for raw in lines) + 2, "chunks stay bounded"
    assert spec_problems("CreateMessageBatchParams", json.loads(body)) == [], "the body is what Anthropic's API takes"


def result(custom_id: str, kind: str, **more: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "result": {"type": kind, **more}}


def test_result_lines_are_ranked_by_their_type() -> None:
    assert [rank(result("a", t)) for t in ("succeeded", "errored", "canceled", "expired", "odd")] == [
        SUCCEEDED,
        FAILED,
        NOT_RUN,
        NOT_RUN,
        FAILED,
    ]


def test_a_request_without_a_result_is_written_in_anthropics_shape() -> None:
    assert absent_result(not_run_line("a", "expired")) == result("a", "expired")
    assert absent_result(not_run_line("a", "cancelled")) == result("a", "canceled")
    lost = absent_result(not_run_line("a", "lost"))
    assert lost["result"]["type"] == "errored" and error_code(lost) == "batch_lost"
    assert describe(lost)[0] == "batch_lost" and rank(lost) == FAILED


def test_an_overload_is_a_request_outcome_described_by_its_type() -> None:
    overloaded = result(
        "a", "errored", error={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    )
    assert rank(overloaded) == FAILED
    assert describe(overloaded) == ("overloaded_error", "busy")


def test_usage_counts_cache_tokens_and_prices_them(tmp_path: Path) -> None:
    usage = {
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_creation_input_tokens": 1000,
        "cache_read_input_tokens": 2000,
    }
    lines = [result("a", "succeeded", message={"usage": usage}), result("b", "errored")]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    found = results_usage(path)
    report = found.report()
    assert report is not None
    assert (report["prompt_tokens"], report["completion_tokens"]) == (100, 10)
    assert (report["cache_creation_input_tokens"], report["cache_read_input_tokens"]) == (1000, 2000)
    assert report["lines_with_usage"] == report["lines_succeeded"] == 1
    cost = found.cost("claude-x-20250101", {"claude-x": ModelPrice(1.0, 2.0)})
    assert cost == pytest.approx((100 * 1.0 + 10 * 2.0 + 1000 * 1.25 + 2000 * 0.1) / 1e6)


def test_packed_ids_map_back_exactly_and_a_long_id_leaves_no_room() -> None:
    assert split_slot("12-3-x") == (12, "3-x")
    assert split_slot("4:a-b") == (4, "a-b")
    out = io.BytesIO()
    assert _copy_prefixed(iter([line("a" * 62).encode()]), out, "12-", short_ids=True) is None
    assert _copy_prefixed(iter([line("a" * 62).encode()]), out, "1-", short_ids=True) == (1, len(out.getvalue()), 0)
    assert json.loads(out.getvalue())["custom_id"] == "1-" + "a" * 62


class FakeService:
    """Batches at the seam, with results by batch id (no HTTP: the search's own decisions)."""

    def __init__(self, batches: list[BatchInfo], results: dict[str, list[str]]) -> None:
        self.batches, self.results = batches, results

    def batches_since(self, not_before: float) -> list[BatchInfo]:
        return self.batches

    def download(self, file_id: str, dest: Path) -> int:
        if file_id not in self.results:
            raise NotFoundError("results archived")
        text = "".join(json.dumps(result(c, "succeeded")) + "\n" for c in self.results[file_id])
        dest.write_text(text, encoding="utf-8")
        return len(text)


class FakeStore:
    def __init__(self, held: set[str]) -> None:
        self.held = held

    def part_by_batch(self, batch_id: str) -> object | None:
        return object() if batch_id in self.held else None


def candidate(batch_id: str, status: str, total: int = 2, created: int = 1000) -> BatchInfo:
    return BatchInfo(batch_id, status, created, output_file_id=batch_id, request_counts=RequestCounts(0, 0, total))


def search(
    tmp_path: Path, batches: list[BatchInfo], results: dict[str, list[str]], held: frozenset[str] = frozenset()
) -> BatchInfo | None:
    part_file = tmp_path / "0.jsonl"
    part_file.write_text(line("a") + line("b"), encoding="utf-8")
    part = Part("job", 0, 0, str(part_file), 1, 2, 10, 3, PartState.BATCH_INTENT, 0, 0)
    part.intent_at = 1000.0
    return own_batch(
        cast(Any, FakeService(batches, results)), cast(Store, FakeStore(set(held))), part, tmp_path / "s", 1.0
    )


def test_an_ended_batch_with_the_parts_ids_is_adopted(tmp_path: Path) -> None:
    found = search(
        tmp_path,
        [candidate("other", "completed"), candidate("mine", "completed")],
        {"other": ["x", "y"], "mine": ["b", "a"]},
    )
    assert found is not None and found.id == "mine"


def test_while_a_candidate_runs_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(CandidatesPendingError, match="running"):
        search(tmp_path, [candidate("run", "in_progress"), candidate("other", "completed")], {"other": ["x", "y"]})


def test_batches_of_another_count_time_or_part_are_no_candidates(tmp_path: Path) -> None:
    batches = [
        candidate("big", "in_progress", total=3),
        candidate("old", "in_progress", created=0),
        candidate("held", "in_progress"),
    ]
    assert search(tmp_path, batches, {}, held=frozenset({"held"})) is None  # none could be ours: create


def test_results_naming_only_some_of_the_parts_ids_keep_it_waiting(tmp_path: Path) -> None:
    """A damaged download of our own batch must not let a second one be created."""
    with pytest.raises(CandidatesPendingError, match="some of its requests"):
        search(tmp_path, [candidate("mine", "completed")], {"mine": ["a", "z"]})


def test_the_key_goes_only_to_the_configured_service_when_results_are_redirected(tmp_path: Path) -> None:
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.host, request.headers.get("x-api-key")))
        if request.url.host == "api.example":
            return httpx2.Response(302, headers={"location": "https://storage.example/results.jsonl"})
        return httpx2.Response(200, content=b'{"custom_id": "a", "result": {"type": "expired"}}\n')

    profile = dataclasses.replace(KIND_DEFAULTS["anthropic"], name="c", base_url="https://api.example")
    service = AnthropicService.for_profile(profile, KeySource("k", value="secret"), 5, httpx2.MockTransport(answer))
    size = service.download("https://api.example/v1/messages/batches/b/results", tmp_path / "out.jsonl")
    assert size == (tmp_path / "out.jsonl").stat().st_size > 0
    assert seen == [("api.example", "secret"), ("storage.example", None)]


def test_only_failures_with_a_listed_code_that_succeeded_nowhere_are_retried(tmp_path: Path) -> None:
    busy = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    bad = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(
        "".join(json.dumps(x) + "\n" for x in [result("a", "errored", error=busy), result("b", "errored", error=busy)])
        + json.dumps(
            {"custom_id": "c", "response": {"status_code": 429, "body": {"error": {"code": "rate_limit_exceeded"}}}}
        )
        + "\n"
        + json.dumps(result("d", "errored", error=bad))
        + "\n",
        encoding="utf-8",
    )
    second.write_text(json.dumps(result("b", "succeeded")) + "\n", encoding="utf-8")
    codes = frozenset({"overloaded_error", "rate_limit_exceeded"})
    assert retryable_ids([first, second, tmp_path / "missing"], codes) == {"a", "c"}
    assert retryable_ids([first], frozenset()) == set()


def test_retry_failed_codes_are_read_and_checked(tmp_path: Path) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text('retry_failed_codes = ["overloaded_error", "rate_limit_error"]\n', encoding="utf-8")
    assert load_settings(config, environ={}).retry_failed_codes == {"overloaded_error", "rate_limit_error"}
    config.write_text('retry_failed_codes = ["overloaded error"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="such as overloaded_error"):
        load_settings(config, environ={})


def test_a_candidate_whose_results_are_gone_keeps_the_part_waiting(tmp_path: Path) -> None:
    with pytest.raises(CandidatesPendingError):
        search(tmp_path, [candidate("archived", "completed")], {})
