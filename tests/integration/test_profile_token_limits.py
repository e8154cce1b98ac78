"""Token-limit learning and model holds per provider profile, with two services side by side.

Two emulators on loopback: OpenAI's shape for the default profile, Azure's for `[providers.azure]`,
whose model map sends `gpt-4o-mini` as its deployment. Azure says its queue for that deployment is
full when the batch is created: the limit is learned and the model held on the azure profile only,
so OpenAI's `gpt-4o-mini` goes on at once, and the azure file is created once after its hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.service import holds
from daemon.state.states import JobState
from tests.support import Harness, azure_profile, batch_posts, fast_settings, request_file, wait_until

DEPLOYMENT = "gpt-4o-mini-batch"  # the azure emulator's GlobalBatch deployment
HOLD = 8.0  # seconds a model hold lasts here: the default profile's job must end well within it
QUEUE_FULL = (
    '{"error": {"code": "token_limit_exceeded", "type": "invalid_request_error", "param": null, "message": '
    f'"Enqueued token limit reached for {DEPLOYMENT} in this region. Limit: 90,000 enqueued tokens. '
    'Please try again later."}}'
)


@pytest.fixture(name="harness")
def harness_fixture(tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer) -> Iterator[Harness]:
    config = tmp_path / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n'
        + azure_profile(azure_server.base_url, f'models = {{ "gpt-4o-mini" = "{DEPLOYMENT}" }}\n'),
        encoding="utf-8",
    )
    providers = load_settings(config, environ={}).providers
    root = tmp_path / "root"
    root.mkdir()
    harness = Harness(fast_settings(root, openai_server.base_url, providers=providers), openai_server).start()
    try:
        yield harness
    finally:
        harness.stop()


def test_a_full_queue_on_one_profile_holds_only_that_profiles_model(
    harness: Harness, openai_server: EmulatorServer, azure_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", HOLD)
    azure_server.faults.add_rule(action="reply", method="POST", path_prefix="/v1/batches", status=400, body=QUEUE_FULL)
    assert harness.store is not None
    store = harness.store
    harness.drop("full.jsonl", request_file(2, prefix="a"), "azure")
    wait_until(lambda: azure_server.faults.fired == 1, 10, "azure to say its queue is full")
    wait_until(lambda: store.fact("token_limit@azure:gpt-4o-mini") is not None, 10, "the azure limit to be learned")
    harness.drop("free.jsonl", request_file(3, prefix="o"))  # the same model, on OpenAI
    done = harness.profile_job("default", JobState.DONE, timeout=HOLD / 2)  # runs while azure's model is held
    assert done.model == "gpt-4o-mini"
    assert store.fact("token_limit:gpt-4o-mini") is None, "OpenAI's limit was not learned from Azure's message"
    assert store.fact("token_limit@azure:gpt-4o-mini") == "90000"
    assert store.fact("model_hold:gpt-4o-mini") is None and store.fact("model_hold@azure:gpt-4o-mini") is not None
    finished = harness.profile_job("azure", JobState.DONE, timeout=HOLD * 3)  # created once, after its hold
    assert (Path(finished.result_dir or "") / "results.jsonl").read_text().count("custom_id") == 2
    assert (batch_posts(openai_server), azure_server.faults.fired, len(azure_server.batches())) == (1, 1, 1)
