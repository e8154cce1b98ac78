"""The Files and Batches routes: parameter checks, then the store."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.emulator.errors import ApiError, bad_request
from daemon.emulator.flavours import Flavour
from daemon.emulator.messages import ApiRequest, FileReply, JsonReply, Reply, error_reply
from daemon.emulator.multipart import MultipartError, parse_multipart
from daemon.emulator.params import parse_limit, parse_order, parse_upload_params
from daemon.emulator.store import Store

MAX_UPLOAD_BYTES = 512 * 1024 * 1024
logger = logging.getLogger(__name__)

Handler = Callable[[ApiRequest, dict[str, str]], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


def matched_route(
    routes: list[tuple[Route, re.Pattern[str]]], method: str, path: str
) -> tuple[str, Handler | None, dict[str, str]]:
    """(template for the call log, handler or None, path parameters): a path that matches a route of
    another method keeps that route's template, so the call log names it (and the reply is a 405-like 404)."""
    template = path
    for route, pattern in routes:
        match = pattern.match(path)
        if match is None:
            continue
        template = route.template
        if route.method == method:
            return template, route.handler, match.groupdict()
    return template, None, {}


class Api:
    id_header = "x-request-id"  # the response header naming the request
    chunked_bodies = False

    def __init__(self, store: Store, flavour: Flavour | None = None) -> None:
        self._store = store
        self._flavour = flavour or Flavour()
        routes = [
            Route("POST", "/v1/files", self.create_file),
            Route("GET", "/v1/files", self.list_files),
            Route("GET", "/v1/files/{file_id}", self.retrieve_file),
            Route("DELETE", "/v1/files/{file_id}", self.delete_file),
            Route("GET", "/v1/files/{file_id}/content", self.file_content),
            Route("POST", "/v1/batches", self.create_batch),
            Route("GET", "/v1/batches", self.list_batches),
            Route("GET", "/v1/batches/{batch_id}", self.retrieve_batch),
            Route("POST", "/v1/batches/{batch_id}/cancel", self.cancel_batch),
        ]
        self._routes = [(route, route.pattern) for route in routes]

    def path_of(self, raw: str) -> str:
        """The `/v1/...` route path for a path as the client sent it (see flavours.py)."""
        return self._flavour.path_of(raw)

    def route_of(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        """(template for the call log, handler or None, path parameters)."""
        return matched_route(self._routes, method, path)

    def error_reply(self, error: ApiError) -> JsonReply:
        return error_reply(error)

    def handle(self, request: ApiRequest) -> Reply:
        _, handler, params = self.route_of(request.method, request.path)
        try:
            self._flavour.authorise(request)
            if handler is None:
                raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
            return handler(request, params)
        except ApiError as error:
            return error_reply(error)
        except Exception:
            logger.exception("emulator route %s %s failed", request.method, request.path)
            return error_reply(ApiError(500, "The emulator failed to process the request."))

    # Files

    def create_file(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        staged = self._store.staging_path()
        try:
            return JsonReply(200, self._receive_upload(request, staged))
        finally:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()  # only still there when the upload was rejected

    def _receive_upload(self, request: ApiRequest, staged: Path) -> dict[str, Any]:
        if request.body.remaining > MAX_UPLOAD_BYTES:
            raise bad_request("File is too large. The maximum file size is 512 MB.", param="file")
        try:
            form = parse_multipart(request.body.read, request.header("Content-Type") or "", staged)
        except MultipartError as error:
            raise bad_request(str(error)) from error
        params = parse_upload_params(form.fields, form.filename)
        assert form.filename is not None  # parse_upload_params insists on the file part
        return self._store.add_upload(staged, form.filename, params)

    def list_files(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        query = request.query
        descending = parse_order(query)
        limit = parse_limit(query, 1, 10_000, 10_000)
        return JsonReply(200, self._store.list_files(query.get("purpose"), descending, query.get("after"), limit))

    def retrieve_file(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._store.file(params["file_id"]))

    def delete_file(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._store.delete_file(params["file_id"]))

    def file_content(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        handle, size = self._store.open_content(params["file_id"])
        return FileReply(handle, size)

    # Batches

    def create_batch(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        batch = self._store.create_batch(self._flavour.batch_params(request.json()))
        return JsonReply(200, self._flavour.batch_json(batch))

    def list_batches(self, request: ApiRequest, _: dict[str, str]) -> Reply:
        limit = parse_limit(request.query, 1, 100, 20)
        page = self._store.list_batches(request.query.get("after"), limit)
        page["data"] = [self._flavour.batch_json(batch) for batch in page["data"]]
        return JsonReply(200, page)

    def retrieve_batch(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._flavour.batch_json(self._store.batch(params["batch_id"])))

    def cancel_batch(self, _: ApiRequest, params: dict[str, str]) -> Reply:
        return JsonReply(200, self._flavour.batch_json(self._store.cancel_batch(params["batch_id"])))
