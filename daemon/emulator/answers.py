"""Deterministic fake response bodies for the endpoints a batch can target.

Shapes follow the real responses closely enough for SDK models and result parsers; the text is
derived from the request so a test can tell which answer belongs to which request.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from daemon.emulator.ids import stable_fraction, stable_hex

DEFAULT_EMBEDDING_DIMENSIONS = 8
MAX_EMBEDDING_DIMENSIONS = 256
MAX_CHOICES = 8
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


@dataclass(frozen=True, slots=True)
class Answer:
    body: dict[str, Any]
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class _Context:
    body: dict[str, Any]
    model: str
    seed: int
    custom_id: str
    created: int

    @property
    def tag(self) -> str:
        return stable_hex(self.seed, self.custom_id, length=12)

    @property
    def input_tokens(self) -> int:
        return estimate_tokens(self.body)


def estimate_tokens(value: Any) -> int:
    """About 4 bytes of JSON per token, the usual rule of thumb; also used for the queue limit."""
    return max(1, len(orjson.dumps(value)) // 4)


def text_of(value: Any) -> str:
    """The human text inside a prompt, message, content-part list or input list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(part for part in (text_of(item) for item in value) if part)
    if isinstance(value, dict):
        for key in ("text", "content", "input"):
            if key in value:
                return text_of(value[key])
    return ""


def reply_text(context: _Context, prompt: str) -> str:
    snippet = " ".join(prompt.split())[:200]
    return f"Emulated answer {context.tag} from {context.model}: {snippet}"


def count_words(text: str) -> int:
    return max(1, len(text.split()))


def _chat(context: _Context) -> Answer:
    messages = context.body.get("messages")
    prompt = text_of(messages[-1]) if isinstance(messages, list) and messages else ""
    text = reply_text(context, prompt)
    choices = [_chat_choice(index, text) for index in range(_choice_count(context.body))]
    output_tokens = count_words(text) * len(choices)
    body = {
        "id": f"chatcmpl-{context.tag}",
        "object": "chat.completion",
        "created": context.created,
        "model": context.model,
        "choices": choices,
        "usage": _chat_usage(context.input_tokens, output_tokens),
        "service_tier": "default",
        "system_fingerprint": "fp_emulator",
    }
    return Answer(body, context.input_tokens, output_tokens)


def _choice_count(body: dict[str, Any]) -> int:
    wanted = body.get("n", 1)
    return min(max(wanted, 1), MAX_CHOICES) if isinstance(wanted, int) else 1


def _chat_choice(index: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    return {"index": index, "message": message, "logprobs": None, "finish_reason": "stop"}


def _chat_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(context: _Context) -> Answer:
    prompt = context.body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt) else [prompt]
    texts = [reply_text(context, text_of(item)) for item in prompts]
    choices = [
        {"text": text, "index": index, "logprobs": None, "finish_reason": "stop"} for index, text in enumerate(texts)
    ]
    output_tokens = sum(count_words(text) for text in texts)
    body = {
        "id": f"cmpl-{context.tag}",
        "object": "text_completion",
        "created": context.created,
        "model": context.model,
        "choices": choices,
        "usage": {
            "prompt_tokens": context.input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": context.input_tokens + output_tokens,
        },
    }
    return Answer(body, context.input_tokens, output_tokens)


def _response(context: _Context) -> Answer:
    text = reply_text(context, text_of(context.body.get("input", "")))
    output_tokens = count_words(text)
    message = {
        "type": "message",
        "id": f"msg_{context.tag}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    body = {
        "id": f"resp_{context.tag}",
        "object": "response",
        "created_at": context.created,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": context.body.get("instructions"),
        "model": context.model,
        "output": [message],
        "parallel_tool_calls": True,
        "temperature": context.body.get("temperature", 1.0),
        "tool_choice": "auto",
        "tools": [],
        "top_p": context.body.get("top_p", 1.0),
        "usage": _response_usage(context.input_tokens, output_tokens),
        "metadata": context.body.get("metadata") or {},
    }
    return Answer(body, context.input_tokens, output_tokens)


def _response_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def embedding_inputs(value: Any) -> list[Any]:
    """Split `input` into items: a str, a token array, or a list of either."""
    if isinstance(value, list) and not all(isinstance(item, int) for item in value):
        return list(value)
    return [value]


def embedding_vector(seed: int, item: Any, dimensions: int) -> list[float]:
    """A unit vector that depends only on the seed and the input item."""
    key = orjson.dumps(item)
    raw = [stable_fraction(seed, key, index) * 2 - 1 for index in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [round(value / norm, 6) for value in raw]


def _embeddings(context: _Context) -> Answer:
    dimensions = context.body.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or dimensions < 1:
        dimensions = DEFAULT_EMBEDDING_DIMENSIONS
    dimensions = min(dimensions, MAX_EMBEDDING_DIMENSIONS)
    as_base64 = context.body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(embedding_inputs(context.body.get("input", ""))):
        vector = embedding_vector(context.seed, item, dimensions)
        encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": context.input_tokens, "total_tokens": context.input_tokens}
    body = {"object": "list", "data": data, "model": context.model, "usage": usage}
    return Answer(body, context.input_tokens, 0)


def _moderation_result(seed: int, item: Any) -> dict[str, Any]:
    key = orjson.dumps(item)
    scores = {name: round(stable_fraction(seed, key, name) * 1e-3, 8) for name in MODERATION_CATEGORIES}
    return {
        "flagged": False,
        "categories": dict.fromkeys(MODERATION_CATEGORIES, False),
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
    }


def _moderations(context: _Context) -> Answer:
    value = context.body.get("input", "")
    # A list of strings is several inputs; a list of content parts (text + image) is one input.
    items = value if isinstance(value, list) and all(isinstance(v, str) for v in value) else [value]
    results = [_moderation_result(context.seed, item) for item in items]
    body = {"id": f"modr-{context.tag}", "model": context.model, "results": results}
    return Answer(body, context.input_tokens, 0)


def _echo(context: _Context) -> Answer:
    body = {
        "id": f"echo_{context.tag}",
        "object": "emulator.echo",
        "created": context.created,
        "model": context.model,
        "request": context.body,
    }
    return Answer(body, context.input_tokens, 0)


_BUILDERS: dict[str, Callable[[_Context], Answer]] = {
    "/v1/chat/completions": _chat,
    "/v1/completions": _completion,
    "/v1/responses": _response,
    "/v1/embeddings": _embeddings,
    "/v1/moderations": _moderations,
}


def answer(endpoint: str, body: dict[str, Any], *, model: str, seed: int, custom_id: str, created: int) -> Answer:
    """The successful response body for one batch request."""
    context = _Context(body=body, model=model, seed=seed, custom_id=custom_id, created=created)
    return _BUILDERS.get(endpoint, _echo)(context)
