"""Anthropic's result lines: ``{"custom_id", "result": {"type": ..., ...}}``, the type one of
``succeeded``, ``errored``, ``canceled``, ``expired``.

results.jsonl of a job run by a profile of kind ``anthropic`` holds one such line per request. A
request without a result from the service (its batch was lost, abandoned, refused, or its
downloads never added up) gets one in the same shape: ``expired`` or ``canceled`` when its batch
ended so before it ran, otherwise ``errored`` with an ``api_error`` (the only fitting type of
Anthropic's published schema) and batchd's own code (``batch_lost``, ``result_missing``, ...) beside
the result as ``"error": {"code", "message"}``, as in batchd's OpenAI-shaped lines.
Usage comes from ``result.message.usage``, cache tokens included.
"""

from __future__ import annotations

from typing import Any

from daemon.providers import Profile

ANTHROPIC_FORM = "anthropic"
_NEVER_RAN = {"batch_expired": "expired", "batch_cancelled": "canceled"}


def result_form_of(profile: Profile) -> str:
    """The result line shape ``profile``'s service writes."""
    return ANTHROPIC_FORM if profile.kind == "anthropic" else "openai"


def absent_result(openai_line: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic form of a line batchd writes for a request without a result (outcome.py)."""
    error = openai_line.get("error") or {}
    code, message = str(error.get("code") or "not_run"), str(error.get("message") or "")
    kind = _NEVER_RAN.get(code)
    if kind is not None:
        return {"custom_id": openai_line["custom_id"], "result": {"type": kind}}
    # Anthropic's schema knows only its own error types: batchd's code goes beside the result.
    error = {"type": "error", "request_id": None, "error": {"type": "api_error", "message": message}}
    return {
        "custom_id": openai_line["custom_id"],
        "result": {"type": "errored", "error": error},
        "error": {"code": code, "message": message},
    }


def described_result(result: dict[str, Any]) -> tuple[str, str]:
    """(error code, message) of a result that did not succeed."""
    kind = str(result.get("type") or "no_type")
    if kind != "errored":
        return kind, f"The request was {kind} before it ran."
    error = result.get("error")
    inner = error.get("error") if isinstance(error, dict) else None
    if not isinstance(inner, dict):
        return "errored", "The request errored without an error object."
    code, message = inner.get("type"), inner.get("message")
    return (code if isinstance(code, str) and code else "errored"), (message if isinstance(message, str) else "")


def result_usage(result: dict[str, Any]) -> dict[str, Any] | None:
    """``result.message.usage`` of a succeeded result, None if it is not there."""
    message = result.get("message")
    usage = message.get("usage") if isinstance(message, dict) else None
    return usage if isinstance(usage, dict) else None
