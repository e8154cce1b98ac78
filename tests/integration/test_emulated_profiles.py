"""`batchd run --emulator` with provider profiles (what `make demo` runs): each profile is served by a
built-in emulator of its kind, so an azure profile meets Azure's dialect (api-key, v1 path,
deployment names) on its own loopback port while the default profile meets OpenAI's."""

from __future__ import annotations

import dataclasses
import json
from contextlib import ExitStack
from pathlib import Path

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.engine.emulated_profiles import emulated_services
from tests.support import request_file, wait_until

DEMO_CONFIG = Path(__file__).parents[2] / "config" / "demo.toml"


def test_the_demo_configs_azure_profile_gets_an_azure_emulator_of_its_own(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    settings = dataclasses.replace(load_settings(DEMO_CONFIG, environ={}), root=tmp_path, base_url=emulator.base_url)
    lines = tmp_path / "in.jsonl"
    with ExitStack() as stack:
        services = emulated_services(settings, stack)
        stack.callback(services.close)
        azure, default = services.of("azure"), services.of("default")
        assert default.profile.base_url == emulator.base_url
        assert azure.profile.base_url != emulator.base_url and str(azure.profile.base_url).endswith("/openai/v1")
        assert azure.profile.auth == "api-key" and azure.profile.model_names == {"gpt-4o-mini": "gpt-4o-mini-batch"}
        # What the web page's daemon panel shows: the emulator each profile talks to, not its configured URL.
        assert services.emulators == {"default": emulator.base_url, "azure": azure.profile.base_url}
        lines.write_text(request_file(1, model="gpt-4o-mini-batch", url="/chat/completions"))
        file_id = azure.upload(lines, "a.jsonl")
        batch = azure.create_batch(file_id, "/chat/completions", "24h", {}, None)
        assert batch.status == "validating"
    with ExitStack() as stack:  # `make demo` again after a Ctrl-C: the azure emulator kept its batches
        services = emulated_services(settings, stack)
        stack.callback(services.close)
        assert services.of("azure").retrieve(batch.id).id == batch.id
    assert emulator.calls.count("POST", "/v1/files") == 0, "nothing of the azure profile reached the openai emulator"


def test_an_anthropic_profile_gets_an_anthropic_emulator_and_service(tmp_path: Path, emulator: EmulatorServer) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text('[providers.claude]\nkind = "anthropic"\n')
    settings = dataclasses.replace(load_settings(config, environ={}), root=tmp_path, base_url=emulator.base_url)
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"custom_id": "q-1", "params": {"model": "claude-sonnet-4-5", "max_tokens": 10, '
        '"messages": [{"role": "user", "content": "Hello"}]}}\n'
    )
    with ExitStack() as stack:
        services = emulated_services(settings, stack)
        stack.callback(services.close)
        claude = services.of("claude")
        assert claude.profile.base_url != emulator.base_url
        # Built by kind: an OpenAI-shaped service would upload a file the anthropic emulator has no route for.
        batch = claude.create_batch(claude.upload(lines, "in.jsonl"), "/v1/messages", "24h", {}, None)
        assert batch.id.startswith("msgbatch_") and claude.retrieve(batch.id).id == batch.id
    assert emulator.calls.count("POST", "/v1/messages/batches") == 0, "the openai emulator was not asked"
    with ExitStack() as stack:  # `make demo` again after a Ctrl-C: the anthropic emulator kept its batch
        services = emulated_services(settings, stack)
        stack.callback(services.close)
        claude = services.of("claude")
        ended = wait_until(lambda: claude.retrieve(batch.id).output_file_id, 30, "the kept batch to end")
        results = tmp_path / "results.jsonl"
        claude.download(ended, results)
        (line,) = [json.loads(raw) for raw in results.read_text().splitlines()]
        assert line["custom_id"] == "q-1" and line["result"]["type"] == "succeeded"
