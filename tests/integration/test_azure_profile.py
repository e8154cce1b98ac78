"""A `[providers.default]` of kind azure, end to end: the daemon against the emulator's azure flavour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import FAST, Harness, fast_settings, request_file

DEPLOYMENT = "gpt-4o-mini-batch"  # the emulator's GlobalBatch deployment (EmulatorSettings.deployments)


@pytest.fixture(name="azure")
def azure_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator", flavour="azure")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def azure_harness(tmp_path: Path, server: EmulatorServer, table: str) -> Harness:
    """The daemon with a `[providers.default]` read from a config file; the top-level base_url leads nowhere."""
    config = tmp_path / "batchd.toml"
    config.write_text(f'[providers.default]\nkind = "azure"\n{table}', encoding="utf-8")
    providers = load_settings(config, environ={}).providers
    root = tmp_path / "root"
    root.mkdir()
    return Harness(fast_settings(root, "http://127.0.0.1:9/unused", providers=providers), server)


@pytest.mark.parametrize("form", ["v1", "api-version"])
def test_default_profile_of_kind_azure_gets_results(tmp_path: Path, azure: EmulatorServer, form: str) -> None:
    """The v1 endpoint, and the api-version form (which refuses a request without api-version, or
    with a plain key as Bearer): both are only reached with the profile's header and query."""
    table = f'base_url = "{azure.base_url}"\n'
    if form == "api-version":
        table = f'base_url = "{azure.url}/openai"\napi_version = "2024-10-21"\n'
    harness = azure_harness(tmp_path, azure, table).start()
    try:
        harness.drop("azure.jsonl", request_file(3, model=DEPLOYMENT))
        harness.wait_job("azure.jsonl")
        results = harness.results("azure.jsonl")
    finally:
        harness.stop()
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1", "r2"]
    assert all(line["response"]["status_code"] == 200 for line in results)
