"""Batch prices per model and the estimated cost of a job's token usage.

The built-in figures are the Batch API prices (half the standard price) that OpenAI published
on its pricing page in 2025, in USD per 1M tokens. Prices change: they may be stale, so the
``[prices]`` table in the config file overrides or extends them, and every estimate says which
price it used. A model without a price gets usage only, never a guessed cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

PER_TOKENS = 1_000_000
# gpt-4o-mini-2024-07-18 is priced as gpt-4o-mini, claude-sonnet-4-20250514 as claude-sonnet-4
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class ModelPrice(NamedTuple):
    """USD per 1M input (prompt) tokens and per 1M output (completion) tokens, batch pricing."""

    input: float
    output: float


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "gpt-4o": ModelPrice(1.25, 5.00),
    "gpt-4o-mini": ModelPrice(0.075, 0.30),
    "gpt-4.1": ModelPrice(1.00, 4.00),
    "gpt-4.1-mini": ModelPrice(0.20, 0.80),
    "gpt-4.1-nano": ModelPrice(0.05, 0.20),
    "o3-mini": ModelPrice(0.55, 2.20),
    "o4-mini": ModelPrice(0.55, 2.20),
    "text-embedding-3-small": ModelPrice(0.01, 0.0),
    "text-embedding-3-large": ModelPrice(0.065, 0.0),
    # Anthropic Message Batches: half the standard price, from the pricing table of Anthropic's
    # docs (docs.anthropic.com, "Pricing", batch processing column) as published in 2025; the
    # dated model ids (claude-sonnet-4-20250514) are priced by their alias below (_SNAPSHOT).
    "claude-opus-4-1": ModelPrice(7.50, 37.50),
    "claude-opus-4": ModelPrice(7.50, 37.50),
    "claude-sonnet-4-5": ModelPrice(1.50, 7.50),
    "claude-sonnet-4": ModelPrice(1.50, 7.50),
    "claude-3-7-sonnet": ModelPrice(1.50, 7.50),
    "claude-haiku-4-5": ModelPrice(0.50, 2.50),
    "claude-3-5-haiku": ModelPrice(0.40, 2.00),
    "claude-3-haiku": ModelPrice(0.125, 0.625),
}
# Anthropic's prompt caching, as multiples of the input price (the batch discount applies too):
# writing a 5-minute cache entry costs 1.25 times the input price, reading one 0.1 times.
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


def price_for(model: str | None, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model`` (or of the model a dated snapshot belongs to); None if unknown."""
    if not model:
        return None
    return prices.get(model) or prices.get(_SNAPSHOT.sub("", model))


def estimate_cost(prompt_tokens: int, completion_tokens: int, price: ModelPrice | None) -> float | None:
    if price is None:
        return None
    cost = (prompt_tokens * price.input + completion_tokens * price.output) / PER_TOKENS
    return round(cost, 9)  # nano-dollars: small jobs still show a figure


def cache_cost(written: int, read: int, price: ModelPrice | None) -> float:
    """USD for Anthropic's cache tokens at ``price`` (0 without a price: the caller has none then)."""
    if price is None:
        return 0.0
    return (written * price.input * CACHE_WRITE_FACTOR + read * price.input * CACHE_READ_FACTOR) / PER_TOKENS


def parse_prices(value: Any) -> dict[str, ModelPrice]:
    """The built-in table overlaid with configured prices.

    From TOML: ``[prices."gpt-4o-mini"]`` with ``input = 0.075`` and ``output = 0.30``. From the
    environment (BATCHD_PRICES): ``gpt-4o-mini=0.075/0.30,gpt-4o=1.25/5``.
    """
    table = _from_text(value) if isinstance(value, str) else value
    if not isinstance(table, Mapping):
        raise TypeError('prices must be a table such as [prices."gpt-4o-mini"] input = 0.075, output = 0.30')
    return {**DEFAULT_PRICES, **{str(model): _price(str(model), entry) for model, entry in table.items()}}


def _from_text(text: str) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        model, sep, figures = item.partition("=")
        given, slash, taken = figures.partition("/")
        if not (sep and slash and model.strip()):
            raise ValueError(f"write prices as model=input/output, e.g. gpt-4o-mini=0.075/0.30 (got {item!r})")
        table[model.strip()] = {"input": given.strip(), "output": taken.strip()}
    return table


def _price(model: str, entry: Any) -> ModelPrice:
    if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
        raise ValueError(f"prices for {model!r} need exactly two keys: input and output (USD per 1M tokens)")
    figures = []
    for key in ("input", "output"):
        raw = entry[key]
        if isinstance(raw, bool):
            raise ValueError(f"prices.{model}.{key} must be a number of USD per 1M tokens (got {raw!r})")
        number = float(raw)
        if not number >= 0:  # also refuses NaN
            raise ValueError(f"prices.{model}.{key} must be 0 or more (got {raw!r})")
        figures.append(number)
    return ModelPrice(figures[0], figures[1])
