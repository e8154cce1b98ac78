"""Anthropic's error shape: `{"type": "error", "error": {"type": ..., "message": ...}}`.

The routes raise the emulator's ApiError as the other flavours do; only the body differs. The
`error.type` follows the HTTP status as Anthropic documents it (400 invalid_request_error, 401
authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
rate_limit_error, 500 api_error, 529 overloaded_error).
"""

from __future__ import annotations

from typing import Any

from daemon.emulator.errors import ApiError
from daemon.emulator.ids import new_id
from daemon.emulator.messages import JsonReply

REQUEST_ID_HEADER = "request-id"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


def anthropic_error_reply(error: ApiError) -> JsonReply:
    """The error with its request id in the body and in the `request-id` header, as Anthropic sends both."""
    request_id = new_id("req_")
    body = anthropic_error_body(anthropic_error_type(error.status), error.message, request_id)
    return JsonReply(error.status, body, {**error.headers, REQUEST_ID_HEADER: request_id})
