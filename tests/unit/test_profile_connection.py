"""How a profile's client talks: the `api-key` header instead of Bearer, re-read per request, and api-version.

The emulator's azure flavour accepts a Bearer key on its v1 form (as Azure does), so it cannot show
that no Bearer is sent; these requests are caught at the HTTP transport, below the real SDK.
"""

from __future__ import annotations

from pathlib import Path

import httpx2

from daemon.providers import AuthStyle
from daemon.service.credentials import KeySource
from daemon.service.openai_service import build_client

EMPTY_PAGE = {"object": "list", "data": [], "has_more": False}


def sent_requests(tmp_path: Path, auth: AuthStyle, api_version: str | None) -> list[httpx2.Request]:
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=EMPTY_PAGE)

    key_file = tmp_path / "key"
    key_file.write_text("first-key", encoding="utf-8")
    key = KeySource("test key file", file=key_file)
    transport = httpx2.Client(transport=httpx2.MockTransport(answer))
    with build_client(key, "http://azure.test/openai", 5.0, transport, auth=auth, api_version=api_version) as client:
        client.batches.list()
        key_file.write_text("second-key", encoding="utf-8")
        client.batches.list()
    return seen


def test_api_key_style_sends_the_key_as_api_key_and_no_bearer(tmp_path: Path) -> None:
    first, second = sent_requests(tmp_path, "api-key", "2024-10-21")
    assert "authorization" not in first.headers
    assert (first.headers["api-key"], second.headers["api-key"]) == ("first-key", "second-key")
    assert first.url.path == "/openai/batches" and first.url.params["api-version"] == "2024-10-21"


def test_bearer_style_is_unchanged(tmp_path: Path) -> None:
    first, _ = sent_requests(tmp_path, "bearer", None)
    assert first.headers["authorization"] == "Bearer first-key"
    assert "api-key" not in first.headers and "api-version" not in first.url.params
