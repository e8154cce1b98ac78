"""Emulators of the other services (daemon/emulator/flavours.py) on a hand-moved clock, and SDK clients for them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
from openai.types import Batch

from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import FakeClock
from tests.unit.emulator.helpers import jsonl, request_lines

# Each status lasts one second of fake time: validating, in_progress, finalizing.
STEPPED = {"validating_seconds": 1.0, "in_progress_seconds": 1.0, "finalizing_seconds": 1.0, "cancelling_seconds": 1.0}
DEPLOYMENT = "gpt-4o-mini-batch"
API_VERSION = "2024-10-21"
AZURE_KEY = "azure-key-1"
# Shaped like a Microsoft Entra ID token (header.payload.signature); the emulator checks no signature.
ENTRA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb2duaXRpdmUifQ.c2lnbmF0dXJl"


@contextmanager
def flavoured_emulator(tmp_path: Path, clock: FakeClock, flavour: str, **settings: Any) -> Iterator[EmulatorServer]:
    values: dict[str, Any] = {**STEPPED, "data_dir": tmp_path / "emulator", "flavour": flavour, **settings}
    with EmulatorServer(EmulatorSettings(**values), clock=clock) as server:
        yield server


def azure_v1_client(server: EmulatorServer) -> openai.OpenAI:
    """Azure's v1 form: the plain client with the key as `api-key` (the SDK adds it as Bearer too)."""
    headers = {"api-key": AZURE_KEY}
    return openai.OpenAI(base_url=server.base_url + "/", api_key=AZURE_KEY, default_headers=headers, max_retries=0)


def azure_versioned_client(server: EmulatorServer, azure_ad_token: str | None = None) -> openai.AzureOpenAI:
    """The api-version form (`openai.AzureOpenAI`): the `api-key` header, or a Bearer token when given one."""
    if azure_ad_token is not None:
        return openai.AzureOpenAI(
            azure_endpoint=server.url, api_version=API_VERSION, azure_ad_token=azure_ad_token, max_retries=0
        )
    return openai.AzureOpenAI(azure_endpoint=server.url, api_version=API_VERSION, api_key=AZURE_KEY, max_retries=0)


def chat_lines(count: int, model: str, url: str = "/v1/chat/completions") -> list[dict[str, Any]]:
    return [{**line, "url": url} for line in request_lines(count, model=model)]


def submit_lines(
    client: openai.OpenAI,
    tmp_path: Path,
    lines: list[dict[str, Any]],
    endpoint: str = "/v1/chat/completions",
    **extra: Any,
) -> Batch:
    path = tmp_path / "input.jsonl"
    path.write_bytes(jsonl(lines))
    with path.open("rb") as handle:
        uploaded = client.files.create(file=("input.jsonl", handle, "application/jsonl"), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]  # Azure's `/chat/completions` is outside the SDK's Literal
        completion_window="24h",
        **extra,
    )


def statuses_until_terminal(client: openai.OpenAI, clock: FakeClock, batch_id: str, steps: int = 6) -> list[str]:
    """Every status seen, one fake second apart, up to a terminal one (bounded by `steps`)."""
    seen: list[str] = [client.batches.retrieve(batch_id).status]
    for _ in range(steps):
        if seen[-1].lower() in ("completed", "failed", "expired", "cancelled"):
            break
        clock.advance(1.0)
        seen.append(client.batches.retrieve(batch_id).status)
    return seen


def file_size(client: openai.OpenAI, file_id: str) -> int:
    with client.files.with_streaming_response.content(file_id) as response:
        return sum(len(chunk) for chunk in response.iter_bytes(4096))
