"""`batchd recover` when one provider profile's service cannot be searched (its key refused or missing,
a wrong base URL, nothing listening): the other profiles' jobs are rebuilt, the failing profile is
reported with the reason and the fix, and its inputs stay in state/inflight/ untouched (never given
back while their batches could not be looked for). Run again once the profile works, recover rebuilds
the rest; nothing is ever created twice.

Two emulators on loopback, OpenAI's shape for the default profile and Azure's for `[providers.azure]`;
the failures are injected at the azure emulator (a 401, a dropped connection) or are real (a wrong path,
a closed port).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from daemon.cli import main as cli
from daemon.cli.recover import Recovered, recover_state
from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer
from daemon.providers import DEFAULT_PROFILE
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.profile_services import ProfileServices
from daemon.state import folders
from daemon.state.states import JobState
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
AZURE_INPUT = request_file(2, prefix="a", model=DEPLOYMENT)


def _settings(tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer) -> Settings:
    config = tmp_path / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n{azure_profile(azure_server.base_url)}',
        encoding="utf-8",
    )
    root = tmp_path / "root"
    root.mkdir()
    return fast_settings(root, openai_server.base_url, providers=load_settings(config, environ={}).providers)


def _services(settings: Settings, azure_url: str | None = None) -> ProfileServices:
    key = KeySource("test key", value=TEST_KEY)
    profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
    if azure_url is not None:
        profiles["azure"] = dataclasses.replace(profiles["azure"], base_url=azure_url)
    return ProfileServices(
        {n: OpenAIService.for_profile(p, key, settings.request_timeout) for n, p in profiles.items()}
    )


def _recover(settings: Settings, azure_url: str | None = None) -> Recovered:
    services = _services(settings, azure_url)
    try:
        return recover_state(settings, services)
    finally:
        services.close()


def _both_submitted_then_lost(settings: Settings, openai_server: EmulatorServer, azure_server: EmulatorServer) -> None:
    """An input of each profile whose batch was created, the daemon stopped before collecting either,
    and the state database lost."""
    for server in (openai_server, azure_server):
        server.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=500, count=1000)
    harness = Harness(settings, openai_server).start()
    try:
        harness.drop("d.jsonl", request_file(2, prefix="d"))
        harness.drop("a.jsonl", AZURE_INPUT, "azure")
        assert harness.store is not None
        store = harness.store
        batched = lambda: sum(1 for j in store.jobs() for p in store.parts(j.id) if p.batch_id) == 2  # noqa: E731
        wait_until(batched, 20, "a batch on each service")
    finally:
        harness.stop()
    for server in (openai_server, azure_server):
        server.faults.clear()
    lose_state(settings.root)


def _jobs(settings: Settings) -> dict[str, str]:
    """Input name -> profile of every job the database records."""
    store = Store(settings.state / folders.DB_NAME)
    try:
        return {j.source_name: j.profile for j in store.jobs()}
    finally:
        store.close()


def _azure_inflight(settings: Settings) -> list[Path]:
    return [p for p in (settings.state / folders.INFLIGHT).iterdir() if p.name.endswith("a.jsonl")]


def _finish_both(settings: Settings, openai_server: EmulatorServer, azure_server: EmulatorServer) -> None:
    harness = Harness(settings, openai_server).start()
    try:
        harness.wait_job("d.jsonl", JobState.DONE)
        harness.wait_job("a.jsonl", JobState.DONE)
        assert sorted(r["custom_id"] for r in harness.results("a.jsonl")) == ["a0", "a1"]
        assert sorted(r["custom_id"] for r in harness.results("d.jsonl")) == ["d0", "d1"]
    finally:
        harness.stop()
    assert (batch_posts(openai_server), batch_posts(azure_server)) == (1, 1), "never a second batch"


def _refuse_key(server: EmulatorServer) -> None:
    server.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=401, count=1000)


def _drop_connections(server: EmulatorServer) -> None:
    server.faults.add_rule(action="drop", method="GET", path_prefix="/v1/batches", count=1000)


FAILURES = {
    "key refused": ("refused the key", _refuse_key),
    "connection dropped": ("could not be reached", _drop_connections),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_a_profile_whose_service_fails_is_reported_and_the_others_are_recovered_then_the_rest_on_a_rerun(
    failure: str, tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(tmp_path, openai_server, azure_server)
    _both_submitted_then_lost(settings, openai_server, azure_server)
    (held,) = _azure_inflight(settings)
    hint, inject = FAILURES[failure]
    inject(azure_server)
    done = _recover(settings)
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE}, "the default profile's job rebuilt all the same"
    ((profile, why),) = done.unreachable
    assert profile == "azure" and hint in why and "[providers.azure]" in why and "batchd recover" in why
    assert TEST_KEY not in "\n".join(done.lines())
    assert _azure_inflight(settings) == [held] and held.read_text() == AZURE_INPUT, "left untouched"
    assert not list(settings.pending.rglob("a.jsonl")), "never given back while its batch could not be looked for"
    assert any(str(held) == what and "could not be searched" in reason for what, reason in done.left)
    azure_server.faults.clear()
    again = _recover(settings)  # the profile works again: the rest is rebuilt, nothing twice
    assert (again.unreachable, again.returned, again.left) == ([], [], [])
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE, "a.jsonl": "azure"}
    _finish_both(settings, openai_server, azure_server)


@pytest.mark.parametrize("where", ["a wrong path", "a closed port"])
def test_a_wrong_base_url_is_reported_with_the_setting_to_check(
    where: str, tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(tmp_path, openai_server, azure_server)
    _both_submitted_then_lost(settings, openai_server, azure_server)
    wrong = f"{azure_server.base_url}/wrong" if where == "a wrong path" else "http://127.0.0.1:9/openai/v1"
    done = _recover(settings, wrong)
    ((profile, why),) = done.unreachable
    assert profile == "azure" and wrong in why and "base_url" in why
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE}
    assert len(_azure_inflight(settings)) == 1 and not list(settings.pending.rglob("a.jsonl"))
    assert _recover(settings).unreachable == []
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE, "a.jsonl": "azure"}


def test_the_command_exits_3_for_a_profile_without_its_key_and_a_rerun_after_the_daemon_ran_rebuilds_it(
    tmp_path: Path,
    openai_server: EmulatorServer,
    azure_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(tmp_path, openai_server, azure_server)
    _both_submitted_then_lost(settings, openai_server, azure_server)
    for name in ("BATCHD_CONFIG", "CREDENTIALS_DIRECTORY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    command = ["recover", "--config", str(tmp_path / "batchd.toml"), "--root", str(settings.root)]
    assert cli.main(command) == cli.EXIT_PROFILE_UNSEARCHED == 3
    out = capsys.readouterr().out
    assert "profile azure: NOT SEARCHED" in out and "AZURE_OPENAI_API_KEY" in out, out
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE} and len(_azure_inflight(settings)) == 1
    meanwhile = Harness(settings, openai_server).start()  # the daemon runs in between, as an operator's would
    try:
        meanwhile.wait_job("d.jsonl", JobState.DONE)
    finally:
        meanwhile.stop()
    assert len(_azure_inflight(settings)) == 1, "the daemon leaves the unsearched profile's input alone"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
    assert cli.main(command) == cli.EXIT_OK, capsys.readouterr().out
    assert _jobs(settings) == {"d.jsonl": DEFAULT_PROFILE, "a.jsonl": "azure"}
    _finish_both(settings, openai_server, azure_server)


def test_a_shared_batch_of_a_profile_that_cannot_be_searched_keeps_its_pack_and_members(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    settings = _settings(tmp_path, openai_server, azure_server)
    azure_server.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=500, count=1000)
    folder = settings.pending / "azure"
    folder.mkdir(parents=True)
    long_ago = time.time() - 60.0  # claimed at once, so the two share a batch
    for name in ("p.jsonl", "q.jsonl"):
        (folder / name).write_text(request_file(1, prefix=name[0], model=DEPLOYMENT))
        os.utime(folder / name, (long_ago, long_ago))
    harness = Harness(settings, openai_server).start()
    try:
        wait_until(lambda: len(azure_server.batches()) == 1, 20, "the pack's batch on azure")
    finally:
        harness.stop()
    azure_server.faults.clear()
    lose_state(settings.root)
    held = sorted((settings.state / folders.INFLIGHT).iterdir()) + sorted((settings.state / folders.PACKS).iterdir())
    assert len(held) == 3, "two inputs and their pack"
    _refuse_key(azure_server)
    done = _recover(settings)
    assert (done.jobs, done.returned, [p for p, _ in done.unreachable]) == ([], [], ["azure"])
    now = sorted((settings.state / folders.INFLIGHT).iterdir()) + sorted((settings.state / folders.PACKS).iterdir())
    assert now == held and not list(folder.iterdir()), "the pack and its members left untouched"
    azure_server.faults.clear()
    again = _recover(settings)
    assert (len(again.jobs), again.returned, again.left) == (3, [], []), "the pack and its two members"
    finished = Harness(settings, openai_server).start()
    try:
        for name in ("p.jsonl", "q.jsonl"):
            finished.wait_job(name, JobState.DONE)
            assert [r["custom_id"] for r in finished.results(name)] == [f"{name[0]}0"]
    finally:
        finished.stop()
    assert batch_posts(azure_server) == 1, "never a second batch"
