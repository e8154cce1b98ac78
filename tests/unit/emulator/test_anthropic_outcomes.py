"""What each request of an anthropic-flavoured batch ends as: trigger words, the error rate, usage."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from daemon.emulator import EmulatorServer
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests, results_by_id, wait_ended
from tests.unit.emulator.conftest import ServerFactory


@pytest.fixture
def sdk(make_server: ServerFactory) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(make_server(flavour="anthropic")) as client:
        yield client


def run(sdk: anthropic.Anthropic, requests: list[Any]) -> tuple[Any, dict[str, Any]]:
    batch = wait_ended(sdk, sdk.messages.batches.create(requests=requests).id)
    return batch, results_by_id(sdk, batch.id)


@pytest.mark.parametrize(
    ("word", "error_type"),
    [
        ("fail-request", "invalid_request_error"),
        ("fail-overloaded", "overloaded_error"),
        ("fail-rate-limit", "rate_limit_error"),
        ("fail-api-error", "api_error"),
    ],
)
def test_a_trigger_word_in_a_message_errors_that_request_only(
    sdk: anthropic.Anthropic, word: str, error_type: str
) -> None:
    requests = message_requests(3)
    requests[1]["params"]["messages"][0]["content"] = f"please {word} now"

    batch, results = run(sdk, requests)

    assert batch.request_counts.errored == 1 and batch.request_counts.succeeded == 2
    failed = results["req-1"].result
    assert failed.type == "errored"
    assert failed.error.type == "error"
    assert failed.error.error.type == error_type
    assert {results["req-0"].result.type, results["req-2"].result.type} == {"succeeded"}


def test_a_trigger_word_in_the_system_prompt_counts_too(sdk: anthropic.Anthropic) -> None:
    requests = message_requests(2)
    requests[0]["params"]["system"] = [{"type": "text", "text": "fail-overloaded"}]

    _, results = run(sdk, requests)

    assert results["req-0"].result.type == "errored"
    assert results["req-0"].result.error.error.type == "overloaded_error"


def test_fail_all_in_the_model_errors_every_request(sdk: anthropic.Anthropic) -> None:
    batch, results = run(sdk, message_requests(4, model="claude-fail-all"))

    assert dict(batch.request_counts) == {"processing": 0, "succeeded": 0, "errored": 4, "canceled": 0, "expired": 0}
    assert {line.result.error.error.type for line in results.values()} == {"invalid_request_error"}


def test_the_error_rate_errors_a_reproducible_share_of_requests(make_server: ServerFactory) -> None:
    def errored_ids(server: EmulatorServer) -> set[str]:
        with anthropic_client(server) as sdk:
            _, results = run(sdk, message_requests(40))
        return {cid for cid, line in results.items() if line.result.type == "errored"}

    first = errored_ids(make_server(flavour="anthropic", request_error_rate=0.5, seed=3))
    second = errored_ids(make_server(flavour="anthropic", request_error_rate=0.5, seed=3))

    assert 5 < len(first) < 35
    assert first == second


def test_a_message_answers_its_request_and_honours_max_tokens(sdk: anthropic.Anthropic) -> None:
    requests = message_requests(2)
    requests[1]["params"]["max_tokens"] = 3

    _, results = run(sdk, requests)

    full, cut = results["req-0"].result.message, results["req-1"].result.message
    assert full.stop_reason == "end_turn" and "question 0" in full.content[0].text
    assert cut.stop_reason == "max_tokens" and len(cut.content[0].text.split()) == 3
    assert cut.usage.output_tokens == 3
    assert full.id != cut.id and full.id.startswith("msg_")


def test_cache_control_shows_in_the_cache_token_counts(sdk: anthropic.Anthropic) -> None:
    requests = message_requests(2)
    long_text = "context " * 200
    requests[0]["params"]["system"] = [{"type": "text", "text": long_text, "cache_control": {"type": "ephemeral"}}]
    requests[1]["params"]["system"] = long_text

    _, results = run(sdk, requests)

    cached, plain = results["req-0"].result.message.usage, results["req-1"].result.message.usage
    assert cached.cache_creation_input_tokens and cached.cache_creation_input_tokens > 0
    assert cached.cache_read_input_tokens == cached.cache_creation_input_tokens
    assert (plain.cache_creation_input_tokens, plain.cache_read_input_tokens) == (0, 0)


def test_results_come_in_a_reproducible_order_that_is_not_input_order(make_server: ServerFactory) -> None:
    def order(server: EmulatorServer) -> list[str]:
        with anthropic_client(server) as sdk:
            batch = wait_ended(sdk, sdk.messages.batches.create(requests=message_requests(20)).id)
            return [line.custom_id for line in sdk.messages.batches.results(batch.id)]

    first = order(make_server(flavour="anthropic"))

    assert first == order(make_server(flavour="anthropic"))
    assert sorted(first) == sorted(f"req-{index}" for index in range(20))
    assert first != [f"req-{index}" for index in range(20)]


def test_the_batch_record_sums_the_usage_of_its_messages(make_server: ServerFactory) -> None:
    server = make_server(flavour="anthropic")
    requests = message_requests(3)
    requests[0]["params"]["system"] = [{"type": "text", "text": "ctx " * 50, "cache_control": {"type": "ephemeral"}}]
    with anthropic_client(server) as sdk:
        _, results = run(sdk, requests)

    (batch,) = server.message_batches.batches()
    assert batch.counts is not None
    for name in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        assert batch.counts.usage[name] == sum(getattr(line.result.message.usage, name) for line in results.values())
    assert batch.counts.usage["cache_read_input_tokens"] > 0
