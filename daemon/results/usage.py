"""Token usage: summed from the output lines' ``usage``, or from the Batch objects while running.

Endpoints name their counts differently: chat and completions say prompt/completion tokens, the
Responses API says input/output tokens, embeddings have prompt tokens only. All are read as
prompt (input) and completion (output) tokens.

Some servers (llama-stack) send ``response.body`` as a JSON-encoded string; it is decoded the
same way. Usage that cannot be read is unknown, never 0: a succeeded line without readable usage
leaves the figures incomplete, and an incomplete figure gets no cost estimate (a cost that
silently leaves out some requests would understate the bill).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from daemon.intake.line_reader import CEILING, LongLine, read_lines
from daemon.pricing import ModelPrice, cache_cost, estimate_cost, price_for
from daemon.results.anthropic_results import result_usage


@dataclass(slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    # Lines (or batches) whose usage was read, of those that should carry it (succeeded lines).
    counted: int = 0
    expected: int = 0
    # Anthropic's prompt caching (result.message.usage); reported only for its result lines.
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cache_reported: bool = False

    @property
    def known(self) -> bool:
        """Anything to report: some usage was read, or nothing that used tokens was expected."""
        return self.counted > 0 or self.expected == 0

    @property
    def complete(self) -> bool:
        return self.counted >= self.expected

    def add(self, prompt: int, completion: int, total: int | None = None) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total if total is not None else prompt + completion

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    def in_api_words(self) -> dict[str, int]:
        """The figures in the Batch API's words, as summary.json gives them, with the chat-style
        names kept beside them for readers of the old ones (deprecated)."""
        return {
            "input_tokens": self.prompt_tokens,
            "output_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def absorb(self, other: TokenUsage) -> None:
        """Add ``other``'s figures to these (usage of several files read apart, summed)."""
        self.add(other.prompt_tokens, other.completion_tokens, other.total_tokens)
        self.counted, self.expected = self.counted + other.counted, self.expected + other.expected
        self.cache_creation_tokens += other.cache_creation_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cache_reported = self.cache_reported or other.cache_reported

    def report(self) -> dict[str, int] | None:
        """The figures with how many lines they cover; None (unknown) when none could be read."""
        if not self.known:
            return None
        cache = {
            "cache_creation_input_tokens": self.cache_creation_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
        }
        cache = cache if self.cache_reported else {}
        return {**self.as_dict(), **cache, "lines_with_usage": self.counted, "lines_succeeded": self.expected}

    def cost(self, model: str | None, prices: Mapping[str, ModelPrice]) -> float | None:
        """Estimated USD at ``model``'s batch price; None when the model has no known price or
        the usage of some succeeded lines is unknown."""
        if not self.complete:
            return None
        price = price_for(model, prices)
        cost = estimate_cost(self.prompt_tokens, self.completion_tokens, price)
        if cost is None or not self.cache_reported:
            return cost
        return round(cost + cache_cost(self.cache_creation_tokens, self.cache_read_tokens, price), 9)


def results_usage(path: Path) -> TokenUsage:
    """Sum the usage of every response in a results (or raw output) file; unreadable lines count 0."""
    return files_usage([path])


def files_usage(paths: Iterable[Path]) -> TokenUsage:
    """``results_usage`` over several files (one model's merged segments of an input split by model)."""
    usage = TokenUsage()
    for path in paths:
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            for _, raw in read_lines(fh, CEILING):
                if not isinstance(raw, LongLine):  # too big to read: counts 0, like any unreadable line
                    add_line(usage, raw)
    return usage


def add_line(usage: TokenUsage, raw: bytes) -> None:
    try:
        line: Any = orjson.loads(raw)
        result = line.get("result") if "response" not in line else None
        if isinstance(result, dict):
            add_result(usage, result)
            return
        response = line["response"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return  # not a line of the API's shape: nothing known about it
    if not isinstance(response, dict):
        return  # not run, or failed before the endpoint: used no tokens
    succeeded = _succeeded(response)
    usage.expected += succeeded
    counts = response_body(response).get("usage")
    if not isinstance(counts, dict):
        return
    usage.counted += succeeded
    prompt = _count(counts, "prompt_tokens", "input_tokens")
    completion = _count(counts, "completion_tokens", "output_tokens")
    total = counts.get("total_tokens")
    usage.add(prompt, completion, total if isinstance(total, int) and not isinstance(total, bool) else None)


def add_result(usage: TokenUsage, result: dict[str, Any]) -> None:
    """An Anthropic result line: a succeeded one should carry ``message.usage`` (input tokens
    there exclude the cached ones, which are counted apart)."""
    usage.cache_reported = True
    if result.get("type") != "succeeded":
        return
    usage.expected += 1
    counts = result_usage(result)
    if counts is None:
        return
    usage.counted += 1
    usage.add(_count(counts, "input_tokens"), _count(counts, "output_tokens"))
    usage.cache_creation_tokens += _count(counts, "cache_creation_input_tokens")
    usage.cache_read_tokens += _count(counts, "cache_read_input_tokens")


def response_body(response: dict[str, Any]) -> dict[str, Any]:
    """``response.body`` as an object, whether sent as one or as a JSON-encoded string."""
    body = response.get("body")
    if isinstance(body, str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return {}
    return body if isinstance(body, dict) else {}


def _succeeded(response: dict[str, Any]) -> int:
    status = response.get("status_code")
    return int(isinstance(status, int) and 200 <= status < 300)


def batches_usage(batches: Iterable[Mapping[str, Any]]) -> TokenUsage:
    """What the service reports on the Batch objects so far (batches created since 2025-09).

    Takes the stored Batch JSON as plain dicts: `batchd status` reads thousands of them, and a
    pydantic model per batch (plus importing the SDK's types) would cost it most of a second.
    """
    usage = TokenUsage()
    for batch in batches:
        if not batch:
            continue  # a part not submitted yet has used nothing
        counts = batch.get("usage")
        usage.expected += 1
        if isinstance(counts, dict):
            usage.counted += 1
            total = counts.get("total_tokens")
            usage.add(
                _count(counts, "input_tokens"),
                _count(counts, "output_tokens"),
                total if isinstance(total, int) and not isinstance(total, bool) else None,
            )
    return usage


def _count(counts: dict[str, Any], *names: str) -> int:
    for name in names:
        value = counts.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0
