"""The HTTP request handler: parses requests, applies injected faults, writes replies."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

from daemon.emulator.calls import DROPPED, CallLog
from daemon.emulator.chunked import ChunkedBodyReader
from daemon.emulator.control import CONTROL_PREFIX, ControlApi
from daemon.emulator.errors import ApiError
from daemon.emulator.faults import FaultPlan, FaultRule
from daemon.emulator.ids import new_id
from daemon.emulator.messages import ApiRequest, BodyReader, JsonReply, Reply, close_reply
from daemon.emulator.service_api import ServiceApi
from daemon.emulator.tampering import tampered

STREAM_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Application:
    """Everything a request handler needs; shared by all connections of one server."""

    api: ServiceApi
    control: ControlApi
    faults: FaultPlan
    calls: CallLog
    # Set when the server stops: interrupts injected delays.
    stopping: threading.Event


class _AppServer(Protocol):
    app: Application


def fault_error(fault: FaultRule) -> ApiError:
    message = fault.message or f"Emulated fault: HTTP {fault.status}."
    code = "rate_limit_exceeded" if fault.status == 429 else None
    return ApiError(fault.status, message, code=code, headers=fault.headers())


class EmulatorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # Headers and body go out in separate writes; with Nagle on, each reply waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    @property
    def app(self) -> Application:
        # socketserver types `server` as BaseServer; ours is always an _AppServer.
        return cast(_AppServer, self.server).app

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        self._call: tuple[str, str, str] | None = None
        try:
            request = self._parse_request()
            if request is None:
                return
            if request.path.startswith(CONTROL_PREFIX):
                self._call = (request.method, urlsplit(self.path).path, request.path)
                self._answer(request, self.app.control.handle(request))
            else:
                template, _, _ = self.app.api.route_of(request.method, request.path)
                self._call = (request.method, urlsplit(self.path).path, template)
                self._serve_api(request)
        except OSError:
            self.close_connection = True  # the client went away mid-request; nothing to answer
        finally:
            self._log(DROPPED)  # no-op when a status was already logged

    def _log(self, status: int) -> None:
        """Record the call once, before its response goes out, so a client never sees it unlogged."""
        if self._call is not None:
            method, path, template = self._call
            self._call = None
            self.app.calls.record(method, path, template, status)

    def _parse_request(self) -> ApiRequest | None:
        url = urlsplit(self.path)
        length = self.headers.get("Content-Length")
        encoding = (self.headers.get("Transfer-Encoding") or "").lower()
        chunked = encoding == "chunked" and self.app.api.chunked_bodies
        if (encoding and not chunked) or (length is not None and not length.isdigit()):
            # Chunked uploads are not supported (but by Anthropic's create); the SDKs send Content-Length.
            self.close_connection = True
            self._send_json(self.app.api.error_reply(ApiError(411, "A Content-Length header is required.")))
            return None
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        body = ChunkedBodyReader(self.rfile) if chunked else BodyReader(self.rfile, int(length or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw_path = url.path.rstrip("/") or "/"
        return ApiRequest(self.command, self.app.api.path_of(raw_path), query, headers, body, raw_path)

    def _answer(self, request: ApiRequest, reply: Reply) -> None:
        request.body.drain()
        self._send(reply)

    def _serve_api(self, request: ApiRequest) -> None:
        fault = self.app.faults.decide(request.method, request.path, request.body.remaining)
        if fault is None:
            self._answer(request, self.app.api.handle(request))
        elif not fault.after_processing and fault.action not in ("drop_midway", "tamper"):
            self._fault_before_processing(request, fault)
        else:
            reply = self.app.api.handle(request)
            request.body.drain()
            self._fault_after_processing(reply, fault)

    def _fault_before_processing(self, request: ApiRequest, fault: FaultRule) -> None:
        if fault.action == "slow":
            if self.app.stopping.wait(fault.delay):
                self._drop()
            else:
                self._answer(request, self.app.api.handle(request))
            return
        if fault.action == "hold":
            self.app.faults.hold(fault.delay)
            if self.app.stopping.is_set():
                self._drop()
            else:
                self._answer(request, self.app.api.handle(request))
            return
        request.body.drain()
        if fault.action == "drop":
            self._drop()
        elif fault.action == "reply":
            self._send_raw(fault)
        else:
            self._send(self.app.api.error_reply(fault_error(fault)))

    def _fault_after_processing(self, reply: Reply, fault: FaultRule) -> None:
        if fault.action == "drop_midway":
            self._send_partial(reply)
        elif fault.action == "tamper":
            self._send(tampered(reply, fault.mode or "empty", fault.lines))
        elif fault.action == "slow" and not self.app.stopping.wait(fault.delay):
            self._send(reply)
        else:
            close_reply(reply)
            if fault.action == "status":
                self._send(self.app.api.error_reply(fault_error(fault)))
            elif fault.action == "reply":
                self._send_raw(fault)
            else:
                self._drop()

    def _drop(self) -> None:
        """Close without answering: the handler loop ends and socketserver closes the socket."""
        self._log(DROPPED)
        self.close_connection = True

    def _send(self, reply: Reply) -> None:
        if isinstance(reply, JsonReply):
            self._send_json(reply)
            return
        with reply.handle:
            self._send_head(reply.status, reply.content_type, reply.size, {})
            while chunk := reply.handle.read(STREAM_CHUNK):
                self.wfile.write(chunk)

    def _send_json(self, reply: JsonReply) -> None:
        payload = reply.payload()
        self._send_head(reply.status, "application/json", len(payload), reply.headers)
        self.wfile.write(payload)

    def _send_raw(self, fault: FaultRule) -> None:
        """The rule's body as it is: a reply no client should mistake for a valid one."""
        payload = fault.body.encode()
        self._send_head(fault.status, fault.content_type, len(payload), fault.headers())
        self.wfile.write(payload)

    def _send_partial(self, reply: Reply) -> None:
        """Full Content-Length, half the body, then close: a download cut off mid-stream."""
        self._log(DROPPED)
        if isinstance(reply, JsonReply):
            payload = reply.payload()
            self._send_head(reply.status, "application/json", len(payload), reply.headers)
            self.wfile.write(payload[: len(payload) // 2])
        else:
            with reply.handle:
                self._send_head(reply.status, reply.content_type, reply.size, {})
                left = reply.size // 2
                while left > 0 and (chunk := reply.handle.read(min(STREAM_CHUNK, left))):
                    self.wfile.write(chunk)
                    left -= len(chunk)
        self.close_connection = True

    def _send_head(self, status: int, content_type: str, length: int, extra: Mapping[str, str]) -> None:
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if self.app.api.id_header not in extra:  # an error body may already name its request id
            self.send_header(self.app.api.id_header, new_id("req_"))
        for name, value in extra.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
