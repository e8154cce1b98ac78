"""The flavour settings and `batchd emulator --flavour ...` options (behaviour: tests/integration/test_*_flavour.py)."""

from __future__ import annotations

import argparse

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.cli import add_emulator_arguments, settings_from_arguments


def parsed(*argv: str) -> EmulatorSettings:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    return settings_from_arguments(parser.parse_args(list(argv)))


def test_default_is_the_openai_flavour() -> None:
    settings = parsed()
    default = EmulatorSettings()
    assert (settings.flavour, settings.deployments, settings.upper_statuses, settings.iso_timestamps) == (
        "openai",
        default.deployments,
        False,
        False,
    )


def test_azure_flavour_with_deployments_from_the_command_line() -> None:
    settings = parsed("--flavour", "azure", "--deployment", "team-a", "--deployment", "team-b")
    assert (settings.flavour, settings.deployments) == ("azure", ("team-a", "team-b"))


def test_compatible_flavour_quirks_from_the_command_line() -> None:
    settings = parsed("--flavour", "compatible", "--upper-statuses", "--iso-timestamps")
    assert (settings.flavour, settings.upper_statuses, settings.iso_timestamps) == ("compatible", True, True)


def test_unknown_flavour_and_empty_deployments_are_refused() -> None:
    with pytest.raises(ValueError, match="flavour must be one of openai, azure, compatible"):
        EmulatorSettings(flavour="gemini")
    with pytest.raises(ValueError, match="deployments"):
        EmulatorSettings(flavour="azure", deployments=())


def test_azure_base_url_is_the_v1_form() -> None:
    with EmulatorServer(EmulatorSettings(flavour="azure")) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/openai/v1"


def test_anthropic_flavour_and_its_expiry_from_the_command_line() -> None:
    settings = parsed("--flavour", "anthropic", "--expiry-seconds", "90")
    assert (settings.flavour, settings.expiry_seconds) == ("anthropic", 90.0)
    assert parsed().expiry_seconds == 86_400.0


def test_a_non_positive_expiry_is_refused() -> None:
    with pytest.raises(ValueError, match="expiry_seconds"):
        EmulatorSettings(flavour="anthropic", expiry_seconds=0)


def test_the_anthropic_base_url_is_the_root_and_only_it_has_message_batches() -> None:
    with EmulatorServer(EmulatorSettings(flavour="anthropic")) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.message_batches.batches() == []
        with pytest.raises(RuntimeError, match="no files"):
            _ = server.store
    with EmulatorServer(EmulatorSettings()) as server, pytest.raises(RuntimeError, match="only the anthropic"):
        _ = server.message_batches
