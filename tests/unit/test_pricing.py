"""Token usage and estimated cost: summed from the output lines, priced from a configurable table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError
from daemon.pricing import DEFAULT_PRICES, ModelPrice, estimate_cost, price_for
from daemon.results.usage import TokenUsage, add_line


def test_price_table_from_toml_and_environment(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text('[prices."gpt-4o-mini"]\ninput = 0.1\noutput = 0.4\n[prices.mine]\ninput = 1\noutput = 2\n')
    s = load_settings(toml, environ={}, overrides={"root": tmp_path})
    assert s.prices["gpt-4o-mini"] == ModelPrice(0.1, 0.4)
    assert s.prices["mine"] == ModelPrice(1.0, 2.0)
    assert s.prices["gpt-4o"] == DEFAULT_PRICES["gpt-4o"]  # built-ins stay
    env = load_settings(environ={"BATCHD_PRICES": "mine=3/4, other=0.5/0"}, overrides={"root": tmp_path})
    assert env.prices["mine"] == ModelPrice(3.0, 4.0) and env.prices["other"] == ModelPrice(0.5, 0.0)


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[prices.m]\ninput = -1\noutput = 1\n", "must be 0 or more"),
        ("[prices.m]\ninput = 1\n", "exactly two keys"),
        ("[prices.m]\ninput = true\noutput = 1\n", "must be a number"),
        ('[prices.m]\ninput = "cheap"\noutput = 1\n', "prices"),
        ("prices = 3\n", "must be a table"),
    ],
)
def test_bad_prices_name_the_key(tmp_path: Path, toml: str, fragment: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match="prices") as exc:
        load_settings(path, environ={}, overrides={"root": tmp_path})
    assert fragment in str(exc.value)


def test_snapshots_use_their_model_price() -> None:
    assert price_for("gpt-4o-mini-2024-07-18", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4o-mini"]
    assert price_for("ft:gpt-4o-mini:org::abc", DEFAULT_PRICES) is None  # fine-tunes cost more: no guess
    assert price_for(None, DEFAULT_PRICES) is None
    assert estimate_cost(1_000_000, 1_000_000, ModelPrice(0.075, 0.30)) == pytest.approx(0.375)


def test_usage_reads_every_endpoint_shape() -> None:
    usage = TokenUsage()
    for body in (
        {"usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},  # chat
        {"usage": {"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}},  # responses
        {"usage": {"prompt_tokens": 2, "total_tokens": 2}},  # embeddings
    ):
        add_line(usage, json.dumps({"custom_id": "x", "response": {"status_code": 200, "body": body}}).encode())
    add_line(usage, b'{"custom_id": "y", "response": null, "error": {"code": "batch_expired"}}')
    add_line(usage, b"not json")
    assert usage.as_dict() == {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
