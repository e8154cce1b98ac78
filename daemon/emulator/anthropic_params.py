"""The checks on one request's `params` (the Messages API body), made when the batch runs.

Anthropic checks the envelope of a create call at once (custom_id, the request fields) but
validates each request's `params` asynchronously: a bad one does not fail the create call, the
request ends `errored` with an invalid_request_error naming the problem. The field names are
the spec's CreateMessageParams (additionalProperties false); `stream` must be false in a batch
(the SDK's MessageCreateParamsNonStreaming).
"""

from __future__ import annotations

from typing import Any

PARAMS_FIELDS = frozenset(
    {
        "cache_control",
        "container",
        "inference_geo",
        "max_tokens",
        "messages",
        "metadata",
        "model",
        "output_config",
        "service_tier",
        "stop_sequences",
        "stream",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)
REQUIRED_PARAMS = ("model", "max_tokens", "messages")


def params_problem(params: dict[str, Any]) -> str | None:
    """What is wrong with a request's params, as the request's error message; None when nothing."""
    missing = [key for key in REQUIRED_PARAMS if key not in params]
    if missing:
        return f"{missing[0]}: Field required"
    unknown = sorted(set(params) - PARAMS_FIELDS)
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    return _value_problem(params)


def _value_problem(params: dict[str, Any]) -> str | None:
    model, max_tokens, messages = params["model"], params["max_tokens"], params["messages"]
    problems = (
        (not isinstance(model, str) or not model, "model: Input should be a valid model name"),
        (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0,
            "max_tokens: Input should be an integer greater than or equal to 0",
        ),
        (not isinstance(messages, list) or not messages, "messages: at least one message is required"),
        (
            isinstance(messages, list)
            and not all(isinstance(item, dict) and "role" in item and "content" in item for item in messages),
            "messages: each message needs a role and content",
        ),
        (params.get("stream") not in (None, False), "stream: streaming is not supported in the Message Batches API"),
    )
    return next((message for wrong, message in problems if wrong), None)
