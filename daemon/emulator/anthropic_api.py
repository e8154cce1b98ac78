"""The Message Batches routes of the `anthropic` flavour, with Anthropic's headers and error shape.

Every call needs a key, as `x-api-key` or `Authorization: Bearer` (else 401
authentication_error), and `anthropic-version` (else 400); errors are `{"type": "error",
"error": {"type", "message"}}` (anthropic_errors.py); each reply carries a `request-id` header.
Paths are Anthropic's own (`/v1/messages/batches...`); the SDK's base_url is the server root.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from daemon.emulator.anthropic_body import body_requests
from daemon.emulator.anthropic_errors import REQUEST_ID_HEADER, anthropic_error_reply
from daemon.emulator.anthropic_requests import check_size, limited
from daemon.emulator.anthropic_store import AnthropicStore
from daemon.emulator.api import Route, matched_route
from daemon.emulator.errors import ApiError, bad_request
from daemon.emulator.faults import api_path
from daemon.emulator.keys import bearer_token
from daemon.emulator.messages import ApiRequest, FileReply, JsonReply, Reply

logger = logging.getLogger(__name__)
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000

Handler = Callable[[ApiRequest, dict[str, str]], Reply]


class AnthropicApi:
    id_header = REQUEST_ID_HEADER
    chunked_bodies = True  # a client may stream a 256 MB create body without knowing its size

    def __init__(self, store: AnthropicStore) -> None:
        self._store = store
        routes = [
            Route("POST", "/v1/messages/batches", self.create),
            Route("GET", "/v1/messages/batches", self.list_batches),
            Route("GET", "/v1/messages/batches/{batch_id}", self.retrieve),
            Route("DELETE", "/v1/messages/batches/{batch_id}", self.delete),
            Route("POST", "/v1/messages/batches/{batch_id}/cancel", self.cancel),
            Route("GET", "/v1/messages/batches/{batch_id}/results", self.results),
        ]
        self._routes = [(route, route.pattern) for route in routes]

    def path_of(self, raw: str) -> str:
        return api_path(raw)

    def route_of(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        """(template for the call log, handler or None, path parameters)."""
        return matched_route(self._routes, method, path)

    def error_reply(self, error: ApiError) -> JsonReply:
        return anthropic_error_reply(error)

    def handle(self, request: ApiRequest) -> Reply:
        _, handler, params = self.route_of(request.method, request.path)
        try:
            check_headers(request)
            if handler is None:
                raise ApiError(404, "Not found")
            return handler(request, params)
        except ApiError as error:
            return anthropic_error_reply(error)
        except Exception:
            logger.exception("emulator route %s %s failed", request.method, request.path)
            return anthropic_error_reply(ApiError(500, "Internal server error"))

    def create(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        check_size(request.body.remaining)
        self._store.check_rate()
        staged = self._store.staging_path()
        try:
            batch = self._store.create(body_requests(limited(request.body.read)), staged, root_url(request))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            raise
        return JsonReply(200, batch)

    def retrieve(self, request: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._store.batch(params["batch_id"], root_url(request)))

    def list_batches(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        limit = parse_limit(request.query.get("limit"))
        before_id, after_id = request.query.get("before_id"), request.query.get("after_id")
        if before_id is not None and after_id is not None:
            raise bad_request("Only one of before_id and after_id may be given.")
        data, has_more = self._store.page(limit, before_id, after_id, root_url(request))
        page: dict[str, Any] = {
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        return JsonReply(200, page)

    def cancel(self, request: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._store.cancel(params["batch_id"], root_url(request)))

    def delete(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        self._store.delete(params["batch_id"])
        return JsonReply(200, {"id": params["batch_id"], "type": "message_batch_deleted"})

    def results(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        handle, size = self._store.open_results(params["batch_id"])
        return FileReply(handle, size, content_type="application/x-jsonl")


def check_headers(request: ApiRequest) -> None:
    # The SDK (2.x) sends its api_key as `Authorization: Bearer`; curl examples use `x-api-key`.
    if not (request.header("x-api-key") or "").strip() and bearer_token(request) is None:
        raise ApiError(401, "x-api-key header is required")
    if not (request.header("anthropic-version") or "").strip():
        raise bad_request("anthropic-version: header is required")


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit: Input should be between 1 and {MAX_LIMIT}")
    return limit


def root_url(request: ApiRequest) -> str:
    """Where the client reached us, so `results_url` points back at this server."""
    return f"http://{request.header('host') or '127.0.0.1'}"
