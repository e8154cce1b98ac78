"""Listing batches: pages of 100 when they pay, and a way past another client's newer batches."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from daemon.emulator import EmulatorServer
from daemon.emulator.params import BatchParams, UploadParams
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from tests.support import TEST_KEY

ENDPOINT = "/v1/chat/completions"


@pytest.fixture
def remote(emulator: EmulatorServer) -> Iterator[OpenAIService]:
    client = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
    yield client
    client.close()


def create_batches(emulator: EmulatorServer, count: int, owner: str) -> list[str]:
    """``count`` batches straight in the emulator's store (no API calls), oldest first."""
    staged = emulator.store.staging_path()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    staged.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": ENDPOINT, "body": body}) + "\n")
    upload = emulator.store.add_upload(staged, f"{owner}.jsonl", UploadParams("batch", None))
    params = [BatchParams(upload["id"], ENDPOINT, "24h", {"owner": owner}, None) for _ in range(count)]
    return [emulator.store.create_batch(p)["id"] for p in params]


def list_calls(emulator: EmulatorServer) -> int:
    return sum(n for (method, route), n in emulator.calls.counts().items() if (method, route) == ("GET", "/v1/batches"))


def test_our_batches_come_in_pages_of_a_hundred(emulator: EmulatorServer, remote: OpenAIService) -> None:
    ours = create_batches(emulator, 250, "us")
    emulator.calls.clear()
    seen = remote.list_batches(0.0, set(ours), newest=ours[-1])
    assert set(seen) == set(ours)
    assert list_calls(emulator) == 3


def test_ours_buried_under_another_clients_newer_batches_are_listed_from_our_newest(
    emulator: EmulatorServer, remote: OpenAIService
) -> None:
    ours = create_batches(emulator, 5, "us")
    create_batches(emulator, 2000, "them")  # newer: twenty pages before the first of ours
    emulator.calls.clear()
    seen = remote.list_batches(0.0, set(ours), newest=ours[-1])
    # One page to see that ours are not on top, one page from just after our newest: the older
    # four. The newest itself is left for the caller to retrieve.
    assert set(seen) == set(ours[:-1])
    assert list_calls(emulator) == 2


def test_without_our_newest_paging_stops_once_retrieving_would_be_cheaper(
    emulator: EmulatorServer, remote: OpenAIService
) -> None:
    ours = create_batches(emulator, 5, "us")
    create_batches(emulator, 2000, "them")
    emulator.calls.clear()
    assert remote.list_batches(0.0, set(ours)) == {}
    assert list_calls(emulator) == 5  # as many pages as batches missing, then the caller retrieves
