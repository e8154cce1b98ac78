"""The HTTP request and reply values passed between the handler and the API routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import orjson

from daemon.emulator.errors import ApiError, bad_request

DRAIN_CHUNK = 256 * 1024


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class BodyReader:
    """Reads at most Content-Length bytes, so keep-alive connections stay in sync."""

    def __init__(self, stream: Readable, length: int) -> None:
        self._stream = stream
        self._remaining = length

    @property
    def remaining(self) -> int:
        return self._remaining

    def read(self, size: int) -> bytes:
        if self._remaining <= 0:
            return b""
        data = self._stream.read(min(size, self._remaining))
        self._remaining = self._remaining - len(data) if data else 0
        return data

    def read_all(self, limit: int) -> bytes:
        if self._remaining > limit:
            raise ApiError(413, f"Request body too large; the limit is {limit} bytes.")
        chunks = []
        while chunk := self.read(DRAIN_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def drain(self) -> None:
        """Discard what the route did not read (e.g. a rejected upload) before answering."""
        while self.read(DRAIN_CHUNK):
            pass


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    # Always with the /v1 prefix (see faults.api_path), without the query string.
    path: str
    query: Mapping[str, str]
    # Names in lower case.
    headers: Mapping[str, str]
    body: BodyReader
    # The path as the client sent it (without the query string), before the flavour mapped it.
    raw_path: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self, limit: int = 1024 * 1024) -> Any:
        raw = self.body.read_all(limit)
        try:
            return orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as error:
            message = (
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
            )
            raise bad_request(message) from error


@dataclass(frozen=True, slots=True)
class JsonReply:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        return orjson.dumps(self.body)


@dataclass(frozen=True, slots=True)
class FileReply:
    """File content streamed from disk; the sender closes the handle."""

    handle: BinaryIO
    size: int
    status: int = 200
    content_type: str = "application/octet-stream"


Reply = JsonReply | FileReply


def error_reply(error: ApiError) -> JsonReply:
    return JsonReply(error.status, error.body(), error.headers)


def close_reply(reply: Reply) -> None:
    """Release a reply that will not be sent (its response was replaced by a fault)."""
    if isinstance(reply, FileReply):
        reply.handle.close()
