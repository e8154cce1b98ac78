"""`batchd recover` with two provider profiles: every configured profile's service is searched, and
a job rebuilt from batches on the azure service records the profile `azure` (so its steps go on
there), never a second batch anywhere. A profile whose service cannot list batches cannot show that
an input was never sent: while one is configured, no input is given back.

Two emulators on loopback, OpenAI's shape for the default profile and Azure's for `[providers.azure]`.
"""

from __future__ import annotations

import json
from pathlib import Path

from daemon.cli.recover import recover_state
from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer
from daemon.providers import DEFAULT_PROFILE
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.profile_services import ProfileServices
from daemon.state import folders
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import (
    TEST_KEY,
    Harness,
    azure_profile,
    batch_posts,
    fast_settings,
    lose_state,
    request_file,
    wait_until,
)

DEPLOYMENT = "gpt-4o-mini-batch"  # the azure emulator's GlobalBatch deployment


def _settings(tmp_path: Path, openai_server: EmulatorServer, extra: str) -> Settings:
    config = tmp_path / "batchd.toml"
    config.write_text(f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n{extra}', encoding="utf-8")
    root = tmp_path / "root"
    root.mkdir()
    return fast_settings(root, openai_server.base_url, providers=load_settings(config, environ={}).providers)


def _services(settings: Settings) -> ProfileServices:
    key = KeySource("test key", value=TEST_KEY)
    profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
    return ProfileServices(
        {n: OpenAIService.for_profile(p, key, settings.request_timeout) for n, p in profiles.items()}
    )


def _recover(settings: Settings) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    services = _services(settings)
    try:
        done = recover_state(settings, services)
    finally:
        services.close()
    return done.jobs, done.returned, done.left


def _submitted_then_lost(harness: Harness, azure_server: EmulatorServer, name: str) -> None:
    """An azure input whose batch was created, the daemon stopped before it could collect it, and
    the state database lost."""
    azure_server.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=500, count=1000)
    harness.drop(name, request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    assert harness.store is not None
    store = harness.store
    wait_until(lambda: any(p.batch_id for j in store.jobs() for p in store.parts(j.id)), 20, "the azure batch")
    harness.stop()
    azure_server.faults.clear()
    lose_state(harness.settings.root)


def test_recover_finds_a_batch_on_another_profiles_service_and_records_that_profile(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(
        tmp_path,
        openai_server,
        azure_profile(azure_server.base_url),
    )
    harness = Harness(settings, openai_server).start()
    _submitted_then_lost(harness, azure_server, "lost.jsonl")
    jobs, returned, left = _recover(settings)
    assert (len(jobs), returned, left) == (1, [], [])
    store = Store(settings.state / folders.DB_NAME)
    try:
        (job,) = store.jobs()
        (part,) = store.parts(job.id)
    finally:
        store.close()
    assert job.profile == "azure" and part.state in (PartState.SUBMITTED, PartState.FINISHED)
    restarted = Harness(settings, openai_server).start()
    try:
        assert restarted.store is not None
        done_store = restarted.store
        wait_until(lambda: done_store.job(job.id).state == JobState.DONE, 20, "the recovered job to finish")
    finally:
        restarted.stop()
    results = (Path(job.result_dir or "") / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in results) == ["a0", "a1"]
    assert (batch_posts(openai_server), len(azure_server.batches())) == (0, 1), "never a second batch"


def test_an_input_is_not_given_back_while_a_profile_cannot_be_searched(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(
        tmp_path,
        openai_server,
        azure_profile(azure_server.base_url, "supports_list = false\n"),
    )
    harness = Harness(settings, openai_server).start()
    _submitted_then_lost(harness, azure_server, "unseen.jsonl")
    jobs, returned, left = _recover(settings)
    assert (jobs, returned) == ([], [])
    assert any("azure" in why and "cannot list" in why for _, why in left)
    assert not list(settings.pending.rglob("unseen.jsonl")), "left in state/inflight/, never to be sent twice"
    assert len(list((settings.state / folders.INFLIGHT).iterdir())) == 1


def test_an_input_uploaded_to_a_profile_but_never_batched_goes_back_to_its_folder(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(
        tmp_path,
        openai_server,
        azure_profile(azure_server.base_url),
    )
    azure_server.faults.add_rule(action="status", method="POST", path_prefix="/v1/batches", status=500, count=1000)
    harness = Harness(settings, openai_server).start()
    harness.drop("again.jsonl", request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    wait_until(lambda: azure_server.faults.fired >= 1, 20, "an upload on azure, its batch refused")
    harness.stop()
    azure_server.faults.clear()
    lose_state(settings.root)
    uploads = len(azure_server.files())
    jobs, returned, left = _recover(settings)
    assert (jobs, left) == ([], [])
    assert [Path(dest) for _, dest in returned] == [settings.pending / "azure" / "again.jsonl"], "its own folder"
    assert len(azure_server.files()) < uploads, "its stray upload deleted on the azure service"
    assert (batch_posts(openai_server), len(azure_server.batches())) == (0, 0)


def test_an_input_of_a_profile_never_uploaded_goes_back_to_its_folder(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    """Neither a batch nor an upload tells which service it was for: its name in state/inflight/ does."""
    settings = _settings(tmp_path, openai_server, azure_profile(azure_server.base_url))
    azure_server.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=500, count=1000)
    harness = Harness(settings, openai_server).start()
    harness.drop("unsent.jsonl", request_file(2, prefix="a", model=DEPLOYMENT), "azure")
    wait_until(lambda: azure_server.faults.fired >= 1, 20, "an upload to azure refused")
    harness.stop()
    azure_server.faults.clear()
    lose_state(settings.root)
    assert azure_server.files() == []
    jobs, returned, left = _recover(settings)
    assert (jobs, left) == ([], [])
    assert [Path(dest) for _, dest in returned] == [settings.pending / "azure" / "unsent.jsonl"], "its own folder"
    assert (settings.pending / "azure" / "unsent.jsonl").read_text() == request_file(2, prefix="a", model=DEPLOYMENT)
    assert (batch_posts(openai_server), len(azure_server.batches())) == (0, 0)
