"""`auth = "entra"`: a Microsoft Entra ID token, got and refreshed by azure-identity, sent as Bearer.

The token provider is azure-identity's own (get_bearer_token_provider), fed a credential of ours
instead of DefaultAzureCredential: it hands out numbered JWT-shaped tokens, each expiring when the
test says, and no network is involved. The azure emulator records what each call carried. Without
azure-identity installed, the error says which extra to install.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import ConfigError, CredentialError, PermanentError
from daemon.providers import entra_available, parse_profile
from daemon.service.credentials import KeySource, entra_token_provider
from daemon.service.openai_service import OpenAIService
from tests.support import FAST, request_file

needs_identity = pytest.mark.skipif(not entra_available(), reason="azure-identity (batchd[azure]) is not installed")


class Token(NamedTuple):
    """Shaped like azure-core's AccessToken: what a credential's get_token returns."""

    token: str
    expires_on: int


class NumberedCredential:
    """Issues token 1, 2, ... each valid for ``lifetime`` seconds from when it is asked for."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.issued: list[str] = []
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> Token:
        self.scopes.append(scopes)
        self.issued.append(f"eyJhbGciOiJSUzI1NiJ9.eyJuIjo{len(self.issued) + 1}fQ.c2lnbmF0dXJl")
        return Token(self.issued[-1], int(time.time() + self.lifetime))


@pytest.fixture(name="azure")
def azure_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "azure", flavour="azure")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def _service(server: EmulatorServer, credential: NumberedCredential) -> OpenAIService:
    profile = parse_profile("azure", {"kind": "azure", "base_url": server.base_url, "auth": "entra"})
    key = KeySource("Microsoft Entra ID token", fetch=entra_token_provider(credential), what="Entra ID token")
    return OpenAIService.for_profile(profile, key, 10.0)


def _uploads(server: EmulatorServer) -> list[str]:
    return [credential for _, route, credential in server.calls.credentials() if route == "/v1/files"]


@needs_identity
def test_a_token_is_sent_as_bearer_and_kept_until_it_nears_expiry(azure: EmulatorServer, tmp_path: Path) -> None:
    credential = NumberedCredential(lifetime=3600.0)  # well past azure-core's 5 minute refresh margin
    path = tmp_path / "in.jsonl"
    path.write_text(request_file(1, model="gpt-4o-mini-batch"))
    service = _service(azure, credential)
    try:
        service.upload(path, "a.jsonl")
        service.upload(path, "b.jsonl")
    finally:
        service.close()
    assert credential.issued == [credential.issued[0]]  # asked once, then the cached token served
    assert credential.scopes == [("https://cognitiveservices.azure.com/.default",)]
    assert _uploads(azure) == [f"Bearer {credential.issued[0]}"] * 2


@needs_identity
def test_a_token_near_its_expiry_is_replaced_and_none_reaches_the_logs(azure: EmulatorServer, tmp_path: Path) -> None:
    credential = NumberedCredential(lifetime=60.0)  # inside the refresh margin: expired as far as a call goes
    path = tmp_path / "in.jsonl"
    path.write_text(request_file(1, model="gpt-4o-mini-batch"))
    azure.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=400, count=1)
    service = _service(azure, credential)
    try:
        with capture_logs() as captured, pytest.raises(PermanentError) as refused:
            service.upload(path, "refused.jsonl")
        service.upload(path, "a.jsonl")
        service.upload(path, "b.jsonl")
    finally:
        service.close()
    assert len(set(credential.issued)) == 3  # a fresh token for each call
    assert _uploads(azure) == [f"Bearer {token}" for token in credential.issued]
    shown = str(refused.value) + repr(captured)
    assert not any(token in shown for token in credential.issued)


def test_without_azure_identity_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as if not installed: the import fails
    assert not entra_available()
    with pytest.raises(
        CredentialError, match=r"azure-identity package, which is not installed: pip install 'batchd\[azure\]'"
    ):
        entra_token_provider()
    with pytest.raises(ConfigError, match=r"entra needs the azure-identity package; .*batchd\[azure\]"):
        parse_profile("azure", {"kind": "azure", "base_url": "https://r.openai.azure.com/openai/v1/", "auth": "entra"})
