"""`batchd emulator --api-key KEY`: only that key is accepted, any other gets the service's 401, so a
new user (or a test) can see what a wrong key does; without it any non-empty key is taken."""

from __future__ import annotations

import argparse

import openai
import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.cli import add_emulator_arguments, client_lines, settings_from_arguments


def test_only_the_key_set_is_accepted() -> None:
    with EmulatorServer(EmulatorSettings(api_key="sk-right-key-1234")) as server:
        assert openai.OpenAI(base_url=server.base_url, api_key="sk-right-key-1234").batches.list().data == []
        wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key-9876", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.batches.list()
    assert refused.value.code == "invalid_api_key"
    assert "Incorrect API key provided: sk-********9876" in str(refused.value)
    assert "sk-wrong-key" not in str(refused.value), "the key's ends only, as the service shows it"


def test_without_it_any_non_empty_key_is_accepted() -> None:
    with EmulatorServer(EmulatorSettings()) as server:
        assert openai.OpenAI(base_url=server.base_url, api_key="anything").batches.list().data == []


def test_the_option_and_the_lines_it_prints() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    assert settings_from_arguments(parser.parse_args(["--api-key", "sk-demo"])).api_key == "sk-demo"
    assert "export OPENAI_API_KEY=sk-demo" in client_lines("http://127.0.0.1:1/v1", "openai", "sk-demo")
