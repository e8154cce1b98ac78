"""What the HTTP handler needs of an emulated service's routes: OpenAI's (api.py) or Anthropic's (anthropic_api.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from daemon.emulator.errors import ApiError
from daemon.emulator.messages import ApiRequest, JsonReply, Reply

Handler = Callable[[ApiRequest, dict[str, str]], Reply]


class ServiceApi(Protocol):
    # The response header that carries a request id (`x-request-id`, Anthropic's `request-id`).
    id_header: str
    # Whether request bodies may come `Transfer-Encoding: chunked` (else 411).
    chunked_bodies: bool

    def path_of(self, raw: str) -> str: ...

    def route_of(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]: ...

    def handle(self, request: ApiRequest) -> Reply: ...

    def error_reply(self, error: ApiError) -> JsonReply:
        """An error in this service's shape (also used for injected faults)."""
        ...
