"""The endpoint's own checks of a request body, as the service runs them when a batch runs a line.

The Batch API does not look inside ``body`` while it validates the file: a chat request without
``messages`` is accepted with the batch, and fails alone when it runs, as a 400 in the error file.
So these checks answer per line, never for the whole batch. They are the emulator's own copy of the
rules the daemon checks before sending (daemon/intake/body_rules.py), worded as the service words
its errors: the emulator imports nothing of the daemon, and a test of the daemon's rules against
this server would prove nothing if both read one table.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Fields each endpoint requires, and fields of other endpoints it refuses as unknown.
_REQUIRED = {
    "/v1/chat/completions": ("messages",),
    "/v1/embeddings": ("input",),
    "/v1/responses": ("input",),
    "/v1/completions": ("prompt",),
    "/v1/moderations": ("input",),
    "/v1/images/generations": ("prompt",),
}
_UNKNOWN = {
    "/v1/chat/completions": ("input", "prompt"),
    "/v1/embeddings": ("max_tokens", "messages", "n", "prompt", "temperature"),
    "/v1/responses": ("messages", "n", "prompt"),
    "/v1/completions": ("input", "messages"),
    "/v1/moderations": ("messages", "n", "prompt"),
    "/v1/images/generations": ("input", "messages"),
}
MAX_EMBEDDING_INPUTS = 2048


class BodyError(NamedTuple):
    message: str
    param: str
    code: str | None


def body_error(endpoint: str, body: dict[str, Any]) -> BodyError | None:
    """The 400 the endpoint answers this body with, or None if it would run it."""
    endpoint = endpoint if endpoint.startswith("/v1/") else "/v1" + endpoint
    if body.get("stream") is True:
        return BodyError("Streaming is not supported in the Batch API.", "stream", "invalid_value")
    for name in _REQUIRED.get(endpoint, ()):
        if body.get(name) is None:
            return BodyError(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if body[name] in ("", []):
            return BodyError(f"Invalid '{name}': empty array or string. Expected a non-empty value.", name, None)
    for name in _UNKNOWN.get(endpoint, ()):
        if name in body:
            return BodyError(f"Unrecognized request argument supplied: {name}", name, "unknown_parameter")
    return _embedding_error(endpoint, body)


def _embedding_error(endpoint: str, body: dict[str, Any]) -> BodyError | None:
    value = body.get("input")
    if endpoint != "/v1/embeddings" or not isinstance(value, list) or not value or isinstance(value[0], int):
        return None
    if len(value) > MAX_EMBEDDING_INPUTS:
        message = f"Invalid 'input': array too long. Expected at most {MAX_EMBEDDING_INPUTS} items, got {len(value)}."
        return BodyError(message, "input", "array_above_max_length")
    if any(item in ("", []) for item in value):
        return BodyError("'$.input' is invalid: an input is empty.", "input", None)
    return None
