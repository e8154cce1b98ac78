"""The results file of an ended Message Batch: one JSON line per request, in the plan's order.

`{"custom_id", "result": {"type": "succeeded", "message": Message}}`, or `errored` with an
error response, or `canceled` / `expired` for requests that never ran. Bodies are re-read from
the batch's request file one at a time, so memory stays flat for 100,000 requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from daemon.emulator.answers import estimate_tokens, text_of
from daemon.emulator.anthropic_requests import MessagePlan, RequestError
from daemon.emulator.ids import stable_hex
from daemon.emulator.records import RequestRef

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass(slots=True)
class ResultCounts:
    """A batch's outcome counts, and the usage of its Messages summed (USAGE_FIELDS) for assertions."""

    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0
    usage: dict[str, int] = field(default_factory=dict)

    def to_json(self, processing: int = 0) -> dict[str, int]:
        return {
            "processing": processing,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "canceled": self.canceled,
            "expired": self.expired,
        }


def message(params: dict[str, Any], custom_id: str, seed: int) -> dict[str, Any]:
    """A Message as the Messages API answers `params`: deterministic text naming the request."""
    tag = stable_hex(seed, custom_id, length=24)
    model = params["model"]
    prompt = text_of(params["messages"][-1])
    words = f"Emulated answer {tag[:12]} from {model}: {' '.join(prompt.split())[:200]}".split()
    max_tokens = params["max_tokens"]
    stop_reason = "max_tokens" if len(words) > max_tokens else "end_turn"
    kept = words[:max_tokens]
    # max_tokens 0 only fills the prompt cache: no content at all.
    content = [{"type": "text", "text": " ".join(kept), "citations": None}] if kept else []
    return {
        "id": f"msg_{tag}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
        "usage": usage(params, len(kept)),
    }


def usage(params: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    """Input tokens estimated from the params; with `cache_control` in them, a quarter of the input
    counts as written to the cache and a quarter as read from it (so cache fields are not always 0)."""
    tokens = estimate_tokens(params)
    cached = tokens // 4 if b"cache_control" in orjson.dumps(params) else 0
    return {
        "input_tokens": tokens - 2 * cached,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cached,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": cached, "ephemeral_1h_input_tokens": 0},
        "inference_geo": None,
        "output_tokens_details": None,
        "server_tool_use": None,
        "service_tier": "batch",
    }


def errored_result(error: RequestError, custom_id: str, seed: int) -> dict[str, Any]:
    request_id = f"req_{stable_hex(seed, 'request', custom_id, length=24)}"
    body = {"type": "error", "error": {"type": error.type, "message": error.message}, "request_id": request_id}
    return {"type": "errored", "error": body}


def read_params(source: BinaryIO, ref: RequestRef) -> dict[str, Any]:
    source.seek(ref.offset)
    params: dict[str, Any] = orjson.loads(source.read(ref.length))["params"]
    return params


def write_results(plan: MessagePlan, finished: int, cutoff: str, seed: int, output: Path) -> ResultCounts:
    """Write every request's result; positions from `finished` on never ran and get `cutoff`
    (`canceled` or `expired`). The counts include the usage summed over the Messages."""
    with plan.input_path.open("rb") as source, output.open("wb") as out:
        results = _Results(plan, finished, cutoff, source, seed)
        for position, index in enumerate(plan.order):
            ref = plan.requests[index]
            line = {"custom_id": ref.custom_id, "result": results.result(position, ref)}
            out.write(orjson.dumps(line) + b"\n")
    return results.counts


@dataclass(slots=True)
class _Results:
    plan: MessagePlan
    finished: int
    cutoff: str
    source: BinaryIO
    seed: int
    counts: ResultCounts = field(default_factory=lambda: ResultCounts(usage=dict.fromkeys(USAGE_FIELDS, 0)))

    def result(self, position: int, ref: RequestRef) -> dict[str, Any]:
        counts = self.counts
        if position >= self.finished:
            setattr(counts, self.cutoff, getattr(counts, self.cutoff) + 1)
            return {"type": self.cutoff}
        error = self.plan.errors[position]
        if error is not None:
            counts.errored += 1
            return errored_result(error, ref.custom_id, self.seed)
        counts.succeeded += 1
        answer = message(read_params(self.source, ref), ref.custom_id, self.seed)
        for name in USAGE_FIELDS:
            counts.usage[name] += answer["usage"][name]
        return {"type": "succeeded", "message": answer}
