"""One HTTP/1.1 request and its reply, as the bounded listener (daemon/http_listener.py) reads and
writes them: a request is parsed only once complete, within the listener's caps."""

from __future__ import annotations

import http.client
import io
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the path with its query string, as sent
    headers: Message
    body: bytes
    client: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


class RefusedRequestError(Exception):
    """A request that gets an error reply straight from the reader, without a handler."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


def parse_request(data: bytes, client: str, max_header_bytes: int, max_body_bytes: int) -> Request | None:
    """The request in ``data``, or None while it is incomplete; raises RefusedRequestError for a bad one."""
    end = _head_end(data)
    if end is None:
        if len(data) > max_header_bytes:
            raise RefusedRequestError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        return None
    if end > max_header_bytes:
        raise RefusedRequestError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
    line, _, rest = data[:end].partition(b"\n")
    words = line.decode("latin-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise RefusedRequestError(HTTPStatus.BAD_REQUEST)
    try:
        headers = http.client.parse_headers(io.BytesIO(rest))
    except http.client.HTTPException:
        raise RefusedRequestError(HTTPStatus.BAD_REQUEST) from None
    length = _body_length(headers, max_body_bytes)
    if len(data) - end < length:
        return None
    return Request(words[0], words[1], headers, data[end : end + length], client)


def _head_end(data: bytes) -> int | None:
    """Where the body starts: after the first empty line (CRLF or bare LF, as http.server accepts)."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    return min(ends) if ends else None


def _body_length(headers: Message, max_body_bytes: int) -> int:
    """Content-Length when it is a number (else no body: the handler judges), refused over the cap."""
    value = headers.get("Content-Length", "")
    length = int(value) if value.isdigit() else 0
    if length > max_body_bytes:
        raise RefusedRequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    return length


def render(response: Response, head_only: bool = False) -> bytes:
    phrase = HTTPStatus(response.status).phrase if response.status in _KNOWN else ""
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers if name.lower() not in _FRAMING]
    lines += [f"Content-Length: {len(response.body)}", "Connection: close", "", ""]
    head = "\r\n".join(lines).encode("latin-1")
    return head if head_only else head + response.body


_KNOWN = frozenset(status.value for status in HTTPStatus)
_FRAMING = frozenset({"content-length", "connection", "transfer-encoding"})
