"""Fixtures for every tier: a live emulator over loopback and a daemon harness; the helpers are in tests/support.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state import folders
from daemon.state.store import Store
from tests.support import FAST, Harness, fast_settings


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(**FAST, data_dir=tmp_path / "emulator-data")) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(name="harness_factory")
def harness_factory_fixture(tmp_path: Path, emulator: EmulatorServer) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**changes: Any) -> Harness:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        harness = Harness(fast_settings(root, emulator.base_url, **changes), emulator)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.stop()


@pytest.fixture(name="harness")
def harness_fixture(harness_factory: Callable[..., Harness]) -> Harness:
    return harness_factory().start()


@pytest.fixture(name="openai_server")
def openai_server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    """The default profile's service when two run side by side (see azure_server)."""
    with EmulatorServer(EmulatorSettings(**FAST, data_dir=tmp_path / "openai")) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(name="azure_server")
def azure_server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    """An Azure-shaped service (v1 path, deployment names) for a `[providers.azure]` profile."""
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "azure", flavour="azure")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture(name="anthropic_server")
def anthropic_server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    """Anthropic's Message Batches API (`Anthropic(base_url=server.base_url, ...)`) for an anthropic profile.

    A batch runs FAST["in_progress_seconds"]; expires_at is 2 s after creation, so the `expire` trigger
    ends a batch (half its requests expired) soon enough for a test.
    """
    values = {**FAST, "data_dir": tmp_path / "anthropic", "flavour": "anthropic", "expiry_seconds": 2.0}
    with EmulatorServer(EmulatorSettings(**values)) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(name="prepared")
def prepared_fixture(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    """Default settings on a temporary root with its folders made, and the state database open."""
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    yield settings, store
    store.close()


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[Store]:
    """An empty state database under ``tmp_path/state`` (the folders not made: only the database)."""
    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / folders.DB_NAME)
    yield store
    store.close()
