"""Validation of a batch input file, as the API does at the end of `validating`.

The scan keeps only offsets and token estimates per request, never the bodies: inputs can be
200 MB and the output is generated later by re-reading lines at their offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from daemon.emulator.answers import estimate_tokens
from daemon.emulator.records import RequestRef

MAX_REQUESTS = 50_000
# Real error lists are long for badly broken files; a cap keeps the Batch object readable.
MAX_ERRORS = 100
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


def batch_error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    """One entry of `batch.errors.data`."""
    return {"code": code, "message": message, "param": param, "line": line}


@dataclass(slots=True)
class InputScan:
    model: str
    requests: list[RequestRef]


@dataclass(slots=True)
class _Scanner:
    endpoint: str
    requests: list[RequestRef] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    model: str | None = None
    # How a line's `url` reads before it is compared with the endpoint (Azure lets `/v1` be left out).
    line_url: Callable[[str], str] | None = None

    def feed(self, raw: bytes, line: int, offset: int) -> None:
        if not raw.strip():
            return  # blank lines (e.g. a trailing newline) are tolerated
        error = self._check(raw, line, offset)
        if error is not None and len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    def _check(self, raw: bytes, line: int, offset: int) -> dict[str, Any] | None:
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            return batch_error("invalid_json_line", "This line is not parseable as valid JSON.", line)
        if self.line_url is not None and isinstance(request.get("url"), str):
            request["url"] = self.line_url(request["url"])
        problem = line_problem(request, self.endpoint)
        if problem is not None:
            return batch_error(problem[0], problem[1], line, problem[2])
        return self._accept(request, line, offset, len(raw))

    def _accept(self, request: dict[str, Any], line: int, offset: int, length: int) -> dict[str, Any] | None:
        custom_id: str = request["custom_id"]
        if custom_id in self.seen:
            message = f"The custom_id '{custom_id}' is used by more than one request."
            return batch_error("duplicate_custom_id", message, line, "custom_id")
        model = model_of(request["body"], self.endpoint)
        if model is None:
            return batch_error("invalid_request", "Missing required parameter: 'body.model'.", line, "body.model")
        if self.model is None:
            self.model = model
        elif model != self.model:
            message = f"All requests must use the same model; expected '{self.model}', got '{model}'."
            return batch_error("model_mismatch", message, line, "body.model")
        self.seen.add(custom_id)
        self.requests.append(RequestRef(custom_id, line, offset, length, estimate_tokens(request["body"])))
        return None

    def result(self) -> InputScan | list[dict[str, Any]]:
        if self.errors:
            return self.errors
        if self.model is None:
            return [batch_error("empty_file", "The input file does not contain any requests.")]
        if len(self.requests) > MAX_REQUESTS:
            message = f"The input file contains {len(self.requests)} requests; the limit is {MAX_REQUESTS}."
            return [batch_error("too_many_tasks", message)]
        return InputScan(self.model, self.requests)


def line_problem(request: dict[str, Any], endpoint: str) -> tuple[str, str, str] | None:
    """(code, message, param) for the first schema problem of an input line, or None."""
    for key in ("custom_id", "method", "url", "body"):
        if key not in request:
            return "invalid_request", f"Missing required parameter: '{key}'.", key
    if not isinstance(request["custom_id"], str) or not request["custom_id"]:
        return "invalid_request", "Invalid 'custom_id': expected a non-empty string.", "custom_id"
    if request["method"] != "POST":
        return "invalid_request", f"Invalid 'method' {request['method']!r}: only POST is supported.", "method"
    if request["url"] != endpoint:
        message = f"The url {request['url']!r} does not match the batch endpoint '{endpoint}'."
        return "url_mismatch", message, "url"
    if not isinstance(request["body"], dict):
        return "invalid_request", "Invalid 'body': expected an object.", "body"
    return None


def model_of(body: dict[str, Any], endpoint: str) -> str | None:
    model = body.get("model")
    if isinstance(model, str) and model:
        return model
    # The moderations endpoint has a default model; every other endpoint requires one.
    return DEFAULT_MODERATION_MODEL if endpoint == "/v1/moderations" and model is None else None


def scan_input(
    path: Path, endpoint: str, line_url: Callable[[str], str] | None = None
) -> InputScan | list[dict[str, Any]]:
    """Validate every line; returns the requests, or the batch-level errors."""
    scanner = _Scanner(endpoint, line_url=line_url)
    offset = 0
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            scanner.feed(raw, line, offset)
            offset += len(raw)
    return scanner.result()
