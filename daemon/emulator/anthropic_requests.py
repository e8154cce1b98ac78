"""The requests of a Message Batch create call: checked as Anthropic checks them, then kept on disk.

Anthropic checks the request list synchronously: a bad request (fields, custom_id pattern and
uniqueness, params not an object) fails the create call with a 400 naming it
(`requests.3.custom_id: ...`) and nothing is created. Each request's `params` is validated
when the batch runs (anthropic_params.py): a bad one ends `errored`. Accepted requests are
written one JSON line each to a file under the data directory, so their bodies are re-read one
at a time when results are written (memory stays flat) and only offsets stay in memory.

Trigger words, so tests can script outcomes:
  * in a request's `params.model`: `fail-validation` fails the create call with a 400 naming the
    request (a hook for the create's 400 path; the real service would only error the request);
    `fail-all` makes the request errored (use it on every line to fail them all); `expire` (on
    any request) makes the batch run only half its requests, so the rest are
    `expired` when the batch reaches its `expires_at`;
  * in a request's `messages` or `system` text: `fail-request` (invalid_request_error),
    `fail-overloaded` (overloaded_error), `fail-rate-limit` (rate_limit_error), `fail-api-error`
    (api_error): that request ends `errored` with that error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from daemon.emulator.anthropic_params import params_problem
from daemon.emulator.errors import ApiError, bad_request
from daemon.emulator.ids import stable_fraction, stable_hex
from daemon.emulator.records import RequestRef

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
REQUEST_FIELDS = frozenset({"custom_id", "params"})
FAIL_VALIDATION_TRIGGER = "fail-validation"
FAIL_ALL_TRIGGER = "fail-all"
EXPIRE_TRIGGER = "expire"
# Words in a request's text and the error its result then carries.
CONTENT_TRIGGERS = {
    "fail-request": "invalid_request_error",
    "fail-overloaded": "overloaded_error",
    "fail-rate-limit": "rate_limit_error",
    "fail-api-error": "api_error",
}
ERROR_MESSAGES = {
    "invalid_request_error": "Emulated invalid request for custom_id '{custom_id}'.",
    "overloaded_error": "Overloaded",
    "rate_limit_error": "Emulated rate limit: this request would exceed your rate limit.",
    "api_error": "Internal server error",
}


@dataclass(frozen=True, slots=True)
class RequestError:
    """The error a request's result carries: an Anthropic error type and its message."""

    type: str
    message: str


@dataclass(slots=True)
class MessagePlan:
    """A batch's accepted requests and everything decided about them up front (from seed + custom_id)."""

    input_path: Path
    requests: list[RequestRef]
    # Indices into `requests` in the order they finish (and appear in the results).
    order: list[int]
    # errors[i]: the error of the request at result position i, None when it succeeds.
    errors: list[RequestError | None]
    # How many requests (in `order`) run before the batch would expire: all, or half with `expire`.
    target: int


def too_large() -> ApiError:
    return ApiError(413, f"Request exceeds the maximum allowed number of bytes ({MAX_BODY_BYTES}).")


def check_size(announced: int) -> None:
    """The 413 for a body whose Content-Length is over the limit, before any of it is read."""
    if announced > MAX_BODY_BYTES:
        raise too_large()


def limited(read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """`read`, raising the 413 once more than the limit came (a chunked body has no length to check)."""
    total = 0
    limit = MAX_BODY_BYTES

    def read_within(size: int) -> bytes:
        nonlocal total
        data = read(size)
        total += len(data)
        if total > limit:
            raise too_large()
        return data

    return read_within


def write_requests(items: Iterable[Any], path: Path, seed: int, error_rate: float) -> MessagePlan:
    """Check every request's envelope and write it to `path`; raises the create call's 400 on the first bad one."""
    requests: list[RequestRef] = []
    error_of: dict[str, RequestError | None] = {}
    expiring = False
    offset = 0
    with path.open("wb") as out:
        for index, item in enumerate(items):
            if index == MAX_REQUESTS:
                raise bad_request(f"requests: List should have at most {MAX_REQUESTS} items after validation")
            custom_id, params = check_request(index, item, error_of)
            raw = orjson.dumps({"custom_id": custom_id, "params": params}) + b"\n"
            out.write(raw)
            # About 4 bytes per token, as answers.estimate_tokens, without serialising the params again.
            requests.append(RequestRef(custom_id, index, offset, len(raw), max(1, len(raw) // 4)))
            offset += len(raw)
            error_of[custom_id] = error_for(params, custom_id, seed, error_rate)
            expiring = expiring or EXPIRE_TRIGGER in str(params.get("model"))
    if not requests:
        raise bad_request("requests: List should have at least 1 item after validation, not 0")
    order = sorted(range(len(requests)), key=lambda index: stable_hex(seed, "order", requests[index].custom_id))
    errors = [error_of[requests[index].custom_id] for index in order]
    target = len(requests) // 2 if expiring else len(requests)
    return MessagePlan(path, requests, order, errors, target)


def check_request(index: int, item: Any, seen: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The create call's checks on one request: its fields, custom_id and that params is an object."""
    where = f"requests.{index}"
    if not isinstance(item, dict):
        raise bad_request(f"{where}: Input should be a valid dictionary or object")
    for key in REQUEST_FIELDS:
        if key not in item:
            raise bad_request(f"{where}.{key}: Field required")
    for key in item:
        if key not in REQUEST_FIELDS:
            raise bad_request(f"{where}.{key}: Extra inputs are not permitted")
    custom_id, params = item["custom_id"], item["params"]
    if not isinstance(custom_id, str) or not CUSTOM_ID_PATTERN.match(custom_id):
        raise bad_request(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if custom_id in seen:
        raise bad_request(f"{where}.custom_id: Duplicate custom_id '{custom_id}'; each request needs a unique one.")
    if not isinstance(params, dict):
        raise bad_request(f"{where}.params: Input should be a valid dictionary or object")
    model = params.get("model")
    if isinstance(model, str) and FAIL_VALIDATION_TRIGGER in model:
        raise bad_request(f"{where}.params.model: Emulated validation failure: model '{model}' is not available.")
    return custom_id, params


def error_for(params: dict[str, Any], custom_id: str, seed: int, error_rate: float) -> RequestError | None:
    """The error this request's result will carry, or None for a Message."""
    problem = params_problem(params)
    if problem is not None:
        return RequestError("invalid_request_error", problem)
    if FAIL_ALL_TRIGGER in params["model"]:
        return RequestError("invalid_request_error", f"Emulated failure for custom_id '{custom_id}' (fail-all).")
    text = orjson.dumps([params.get("system"), params["messages"]])
    for word, error_type in CONTENT_TRIGGERS.items():
        if word.encode() in text:
            return RequestError(error_type, ERROR_MESSAGES[error_type].format(custom_id=custom_id))
    if stable_fraction(seed, "error", custom_id) < error_rate:
        return RequestError("invalid_request_error", f"Emulated request failure for custom_id '{custom_id}'.")
    return None
