"""Fixtures: an emulator per test (fast lifecycle, data under tmp_path) and a real SDK client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import FakeClock
from tests.unit.emulator.anthropic_helpers import anthropic_client

FAST = {
    "validating_seconds": 0.05,
    "in_progress_seconds": 0.1,
    "finalizing_seconds": 0.05,
    "cancelling_seconds": 0.05,
}
# With the manual clock each status lasts exactly one "second" of fake time.
STEPPED = {
    "validating_seconds": 1.0,
    "in_progress_seconds": 1.0,
    "finalizing_seconds": 1.0,
    "cancelling_seconds": 1.0,
}

ServerFactory = Callable[..., EmulatorServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start an emulator with FAST timings overridden by keyword arguments; stopped at teardown."""
    servers: list[EmulatorServer] = []

    def factory(clock: Callable[[], float] | None = None, **overrides: Any) -> EmulatorServer:
        values = {**FAST, "data_dir": tmp_path / f"data{len(servers)}", **overrides}
        server = EmulatorServer(EmulatorSettings(**values), clock=clock or time.time)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> EmulatorServer:
    return make_server()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manual_server(make_server: ServerFactory, clock: FakeClock) -> EmulatorServer:
    return make_server(clock=clock, **STEPPED)


def make_client(server: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[openai.OpenAI]:
    with make_client(server) as sdk:
        yield sdk


@pytest.fixture
def manual_client(manual_server: EmulatorServer) -> Iterator[openai.OpenAI]:
    with make_client(manual_server) as sdk:
        yield sdk


@pytest.fixture
def messages_server(make_server: ServerFactory) -> EmulatorServer:
    """The emulator as Anthropic's Message Batches."""
    return make_server(flavour="anthropic")


@pytest.fixture
def sdk(messages_server: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    """The official anthropic SDK pointed at ``messages_server`` (its own retries off)."""
    with anthropic_client(messages_server) as client:
        yield client
