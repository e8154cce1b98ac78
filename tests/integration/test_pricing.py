"""Token usage and estimated cost: summed from the output lines, priced from a configurable table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from daemon.cli.status import job_rows, render_table
from daemon.pricing import DEFAULT_PRICES, ModelPrice
from tests.support import Harness, request_file


def _line_usage(results: list[dict[str, Any]]) -> tuple[int, int]:
    prompt = completion = 0
    for line in results:
        usage = ((line.get("response") or {}).get("body") or {}).get("usage") or {}
        prompt += usage.get("prompt_tokens", usage.get("input_tokens", 0))
        completion += usage.get("completion_tokens", usage.get("output_tokens", 0))
    return prompt, completion


@pytest.mark.parametrize("url", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"])
def test_summary_has_usage_and_cost(harness: Harness, url: str) -> None:
    model = "text-embedding-3-small" if url == "/v1/embeddings" else "gpt-4o-mini"
    harness.drop("priced.jsonl", request_file(6, url=url, model=model))
    harness.wait_job("priced.jsonl")
    summary = harness.summary("priced.jsonl")
    prompt, completion = _line_usage(harness.results("priced.jsonl"))
    assert prompt > 0
    assert summary["usage"]["prompt_tokens"] == prompt
    assert summary["usage"]["completion_tokens"] == completion
    assert summary["usage"]["total_tokens"] == prompt + completion
    price = DEFAULT_PRICES[model]
    assert summary["estimated_cost_usd"] == pytest.approx(
        (prompt * price.input + completion * price.output) / 1e6, abs=1e-9
    )
    assert summary["price_usd_per_1m_tokens"] == {"input": price.input, "output": price.output}
    assert summary["batches"][0]["usage"]["input_tokens"] > 0  # what the service reported, kept per batch


def test_unknown_model_gets_usage_only(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory().start()
    harness.drop("odd.jsonl", request_file(3, model="my-own-model"))
    harness.wait_job("odd.jsonl")
    summary = harness.summary("odd.jsonl")
    assert summary["usage"]["total_tokens"] > 0
    assert summary["estimated_cost_usd"] is None
    assert summary["price_usd_per_1m_tokens"] is None
    assert harness.store is not None
    [row] = job_rows(harness.store, prices=harness.settings.prices)
    assert row["usage"]["total_tokens"] == summary["usage"]["total_tokens"]
    assert row["estimated_cost_usd"] is None
    assert render_table([row]).splitlines()[1].split()[6] == "-"  # COST


def test_configured_price_is_used_and_shown(harness_factory: Callable[..., Harness]) -> None:
    prices = {**DEFAULT_PRICES, "my-own-model": ModelPrice(1000.0, 2000.0)}
    harness = harness_factory(prices=prices).start()
    harness.drop("mine.jsonl", request_file(2, model="my-own-model"))
    harness.wait_job("mine.jsonl")
    cost = harness.summary("mine.jsonl")["estimated_cost_usd"]
    assert cost is not None and cost > 0
    assert harness.store is not None
    [row] = job_rows(harness.store, prices=prices)
    assert row["estimated_cost_usd"] == cost
    assert any(f"${cost:.{n}f}" in render_table([row]) for n in (2, 4, 6))
