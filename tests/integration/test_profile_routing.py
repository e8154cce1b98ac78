"""Routing by folder: two provider profiles side by side, each file on the service of its folder.

Two emulators on loopback: OpenAI's shape for the default profile, Azure's for `[providers.azure]`
(its v1 path, deployment names). A file at the top of pending_upload/ must reach only the first,
a file in pending_upload/azure/ only the second, and an account problem on one leaves the other
working.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.service import holds
from daemon.state.rows import Job
from daemon.state.states import JobState
from tests.support import Harness, azure_profile, batch_posts, fast_settings, request_file, wait_until

DEPLOYMENT = "gpt-4o-mini-batch"  # the azure emulator's GlobalBatch deployment
HOLD = 8.0  # seconds an account hold lasts in the hold test


@contextmanager
def _two_profiles(root: Path, openai: EmulatorServer, azure: EmulatorServer, extra: str = "") -> Iterator[Harness]:
    """A daemon with the default profile on ``openai`` and `[providers.azure]` on ``azure``."""
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai.base_url}"\n\n' + azure_profile(azure.base_url, extra),
        encoding="utf-8",
    )
    providers = load_settings(config, environ={}).providers
    harness = Harness(fast_settings(root, openai.base_url, providers=providers), openai).start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture(name="harness")
def harness_fixture(tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer) -> Iterator[Harness]:
    with _two_profiles(tmp_path / "root", openai_server, azure_server) as harness:
        yield harness


def _results(job: Job) -> list[dict[str, object]]:
    text = (Path(job.result_dir or "") / "results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_each_folder_goes_to_its_profiles_service(
    harness: Harness, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    # The same name in both folders: two jobs, neither overwrites the other's results.
    harness.drop("same.jsonl", request_file(3, prefix="o"))
    harness.drop("same.jsonl", request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    top = harness.profile_job("default", JobState.DONE)
    azure = harness.profile_job("azure", JobState.DONE)
    assert (top.source_name, azure.source_name) == ("same.jsonl", "same.jsonl")
    assert top.result_dir != azure.result_dir and top.final_path != azure.final_path
    assert {Path(top.final_path or "").read_text(), Path(azure.final_path or "").read_text()} == {
        request_file(3, prefix="o"),
        request_file(2, prefix="a", model=DEPLOYMENT),
    }  # both inputs archived whole under today's names (one tagged with its job id), neither overwritten
    assert sorted(str(line["custom_id"]) for line in _results(top)) == ["o0", "o1", "o2"]
    assert sorted(str(line["custom_id"]) for line in _results(azure)) == ["a0", "a1"]
    assert (batch_posts(openai_server), batch_posts(azure_server)) == (1, 1)
    summary = json.loads((Path(azure.result_dir or "") / "summary.json").read_text())
    assert summary["profile"] == "azure"
    assert not (harness.settings.pending / "azure" / "same.jsonl").exists()


def test_an_account_hold_on_one_profile_leaves_the_other_working(
    harness: Harness, openai_server: EmulatorServer, azure_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough that the default profile's job could not finish within the hold if the hold were shared.
    monkeypatch.setattr(holds, "ACCOUNT_RETRY", HOLD)
    azure_server.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=401, count=1000)
    harness.drop("held.jsonl", request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    assert harness.engine is not None
    engine = harness.engine
    wait_until(lambda: "azure" in engine.holds.account_reasons(), 10, "the azure profile to be held")
    harness.drop("free.jsonl", request_file(3, prefix="o"))
    done = harness.profile_job("default", JobState.DONE, timeout=HOLD / 2)  # runs while azure is held
    assert sorted(str(line["custom_id"]) for line in _results(done)) == ["o0", "o1", "o2"]
    held = harness.profile_job("azure", JobState.ACTIVE)
    assert "default" not in engine.holds.account_reasons()
    assert Path(held.inflight_path).exists() and not list(harness.settings.failed.iterdir())
    assert batch_posts(azure_server) == 0 and azure_server.faults.fired >= 1
    azure_server.faults.clear()  # the key is fixed: the held profile resumes by itself
    finished = harness.profile_job("azure", JobState.DONE, timeout=HOLD * 3)
    assert sorted(str(line["custom_id"]) for line in _results(finished)) == ["a0", "a1"]
    assert batch_posts(openai_server) == 1


def test_an_outage_of_one_profiles_service_leaves_the_others_polled(
    harness: Harness, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    assert harness.store is not None
    store = harness.store
    harness.drop("slow.jsonl", request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    azure = harness.profile_job("azure", JobState.ACTIVE)
    wait_until(lambda: any(p.batch_id for p in store.parts(azure.id)), 10, "the azure batch to be created")
    azure_server.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=500, count=1000)
    wait_until(lambda: azure_server.faults.fired >= 1, 10, "a poll of the azure batch to fail")
    harness.drop("quick.jsonl", request_file(3, prefix="o"))
    done = harness.profile_job("default", JobState.DONE, timeout=10)  # polled while azure's polls fail
    assert sorted(str(line["custom_id"]) for line in _results(done)) == ["o0", "o1", "o2"]
    assert store.job(azure.id).state == JobState.ACTIVE
    azure_server.faults.clear()
    finished = harness.profile_job("azure", JobState.DONE, timeout=HOLD * 3)
    assert sorted(str(line["custom_id"]) for line in _results(finished)) == ["a0", "a1"]


def test_a_profile_folders_azure_lines_use_its_url_forms_and_model_map(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    # Azure's short url form and a model map on a profile that is not the default: the input's folder
    # decides which profile's rules check the lines, rename the model and name it back in the results.
    mapped = f'models = {{ "gpt-4o-mini" = "{DEPLOYMENT}" }}\n'
    with _two_profiles(tmp_path / "mapped-root", openai_server, azure_server, mapped) as harness:
        harness.drop("short.jsonl", request_file(2, prefix="a", url="/chat/completions"), "azure")
        harness.drop("short.jsonl", request_file(1, prefix="o", url="/chat/completions"))
        done = harness.profile_job("azure", JobState.DONE)
        refused = harness.profile_job("default", JobState.REJECTED)  # OpenAI takes only the /v1 form
    assert [line["response"]["body"]["model"] for line in _results(done)] == ["gpt-4o-mini"] * 2  # type: ignore[index]
    batch = azure_server.batches()[0]
    assert azure_server.file_bytes(batch["input_file_id"]).count(DEPLOYMENT.encode()) == 2
    assert refused.profile == "default" and batch_posts(openai_server) == 0
