"""`batchd recover` on a compatible service that lists batches and files but drops metadata (the
emulator's compatible flavour, real HTTP): a lost job's batches are told by their input files' names
(batchd-JOB-SEG-ATT.jsonl), so the job is rebuilt and collected with nothing sent twice; an input
never batched goes back; a batch made from a file that is not ours is never adopted; and where a
batch's input file is gone, no input of the profile is given back (it could be that batch's).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from daemon.cli.recover import Recovered, recover_state
from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.providers import DEFAULT_PROFILE
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.profile_services import ProfileServices
from daemon.state import folders
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.support import (
    FAST,
    TEST_KEY,
    Harness,
    ShiftedClock,
    batch_posts,
    drop_before_start,
    fast_settings,
    lose_state,
    request_file,
    wait_until,
)

PROFILE = 'kind = "openai_compatible"\nkey_env = "COMPATIBLE_API_KEY"\n'


@pytest.fixture(name="clock")
def clock_fixture() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(name="compatible")
def compatible_fixture(tmp_path: Path, clock: ShiftedClock) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator", flavour="compatible")  # type: ignore[arg-type]
    with EmulatorServer(settings, clock=clock) as server:
        yield server


def _settings(tmp_path: Path, server: EmulatorServer, table: str = "supports_list = true\n") -> Settings:
    config = tmp_path / "batchd.toml"
    config.write_text(f'[providers.default]\n{PROFILE}base_url = "{server.base_url}"\n{table}', encoding="utf-8")
    root = tmp_path / "root"
    root.mkdir()
    providers = load_settings(config, environ={}).providers
    return fast_settings(root, "http://127.0.0.1:9/unused", providers=providers)


def _recover(settings: Settings) -> Recovered:
    profile = settings.providers[DEFAULT_PROFILE]
    service = OpenAIService.for_profile(profile, KeySource("test key", value=TEST_KEY), settings.request_timeout)
    try:
        return recover_state(settings, ProfileServices({DEFAULT_PROFILE: service}))
    finally:
        service.close()


def _lost_after(settings: Settings, server: EmulatorServer, fault: dict[str, object], fired: str, **drops: str) -> None:
    """Run with ``fault`` at the service until it fired, stop, lose the state database."""
    server.faults.add_rule(**fault, count=1000)
    harness = Harness(settings, server).start()
    try:
        for name, content in drops.items():
            harness.drop(f"{name}.jsonl", content)
        wait_until(lambda: server.faults.fired >= 1, 20, fired)
    finally:
        harness.stop()
    server.faults.clear()
    lose_state(settings.root)


def _foreign_batch(server: EmulatorServer, tmp_path: Path, delete_file: bool = False) -> str:
    """A batch another client of the account made, from a file that is not batchd's."""
    lines = tmp_path / "theirs.jsonl"
    lines.write_text(request_file(2, prefix="r"))  # the same requests as ours, even
    with openai.OpenAI(base_url=server.base_url, api_key=TEST_KEY, max_retries=0) as client:
        file = client.files.create(file=("theirs.jsonl", lines.read_bytes()), purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        if delete_file:
            client.files.delete(file.id)
    return batch.id


def _jobs(settings: Settings) -> list[tuple[str, str | None]]:
    store = Store(settings.state / folders.DB_NAME)
    try:
        return [(j.source_name, p.batch_id) for j in store.jobs() for p in store.parts(j.id)]
    finally:
        store.close()


def test_a_lost_job_is_rebuilt_by_its_input_files_name_and_collected_once(
    tmp_path: Path, compatible: EmulatorServer
) -> None:
    settings = _settings(tmp_path, compatible)
    polls = {"action": "status", "method": "GET", "path_prefix": "/v1/batches", "status": 500}
    _lost_after(settings, compatible, polls, "a batch created, its polls failing", lost=request_file(3, prefix="x"))
    (sent,) = compatible.batches()
    done = _recover(settings)
    assert (len(done.jobs), done.returned, done.left) == (1, [], [])
    assert _jobs(settings) == [("lost.jsonl", sent["id"])]
    assert _recover(settings).jobs == [], "a second run does nothing more"
    harness = Harness(settings, compatible).start()
    try:
        harness.wait_job("lost.jsonl", JobState.DONE)
        assert [r["custom_id"] for r in harness.results("lost.jsonl")] == ["x0", "x1", "x2"]
    finally:
        harness.stop()
    assert batch_posts(compatible) == 1, "never a second batch"


def test_an_input_uploaded_but_never_batched_goes_back_and_a_foreign_batch_is_not_adopted(
    tmp_path: Path, compatible: EmulatorServer
) -> None:
    settings = _settings(tmp_path, compatible)
    creates = {"action": "status", "method": "POST", "path_prefix": "/v1/batches", "status": 400}
    _lost_after(settings, compatible, creates, "its batch refused", again=request_file(2))
    theirs = _foreign_batch(compatible, tmp_path)
    uploads = len(compatible.files())
    done = _recover(settings)
    assert (done.jobs, done.adopted_batches, done.left) == ([], [], [])
    assert [Path(dest) for _, dest in done.returned] == [settings.pending / "again.jsonl"]
    assert len(compatible.files()) < uploads, "its stray upload deleted"
    assert [b["id"] for b in compatible.batches()] == [theirs], "nothing created; theirs left alone"


def test_no_input_goes_back_while_a_batch_whose_input_file_is_gone_could_be_its(
    tmp_path: Path, compatible: EmulatorServer
) -> None:
    settings = _settings(tmp_path, compatible)
    uploads = {"action": "status", "method": "POST", "path_prefix": "/v1/files", "status": 400}
    _lost_after(settings, compatible, uploads, "its upload refused", unsure=request_file(2))
    theirs = _foreign_batch(compatible, tmp_path, delete_file=True)
    done = _recover(settings)
    assert (done.jobs, done.returned) == ([], [])
    ((what, why),) = done.left
    assert what.endswith("unsure.jsonl") and theirs in why and "gone" in why
    assert len(list((settings.state / folders.INFLIGHT).iterdir())) == 1 and not list(settings.pending.iterdir())


def test_a_batch_whose_input_file_is_gone_but_made_before_the_claim_holds_nothing_back(
    tmp_path: Path, compatible: EmulatorServer, clock: ShiftedClock
) -> None:
    settings = _settings(tmp_path, compatible)
    clock.offset = -3600.0  # made an hour before the input was claimed: it cannot be that input's
    theirs = _foreign_batch(compatible, tmp_path, delete_file=True)
    clock.offset = 0.0
    uploads = {"action": "status", "method": "POST", "path_prefix": "/v1/files", "status": 400}
    _lost_after(settings, compatible, uploads, "its upload refused", later=request_file(2))
    done = _recover(settings)
    assert (done.jobs, done.left) == ([], [])
    assert [Path(dest) for _, dest in done.returned] == [settings.pending / "later.jsonl"]
    assert [b["id"] for b in compatible.batches()] == [theirs]


def test_a_service_that_cannot_list_leaves_the_input_and_says_so(tmp_path: Path, compatible: EmulatorServer) -> None:
    settings = _settings(tmp_path, compatible, "supports_list = false\n")
    polls = {"action": "status", "method": "GET", "path_prefix": "/v1/batches", "status": 500}
    _lost_after(settings, compatible, polls, "a batch created", lost=request_file(2))
    done = _recover(settings)
    assert (done.jobs, done.returned) == ([], [])
    ((_, why),) = done.left
    assert "default" in why and "cannot list" in why
    assert len(compatible.batches()) == 1


def test_a_lost_pack_and_an_input_in_two_segments_are_rebuilt_by_their_files_names(
    tmp_path: Path, compatible: EmulatorServer
) -> None:
    settings = dataclasses.replace(
        _settings(tmp_path, compatible), max_requests_per_batch=3, pack_inputs_up_to=1, pack_wait=30.0
    )
    compatible.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=500, count=1000)
    inputs = {f"{n}.jsonl": request_file(1, prefix=n) for n in "abc"} | {"big.jsonl": request_file(5, prefix="big")}
    harness = Harness(settings, compatible)
    drop_before_start(harness, inputs)
    harness.start()
    try:
        wait_until(lambda: len(compatible.batches()) >= 3, 20, "the pack's batch and the big input's two")
    finally:
        harness.stop()
    compatible.faults.clear()
    lose_state(settings.root)
    done = _recover(settings)
    assert (len(done.jobs), len(set(done.adopted_batches)), done.returned, done.left) == (5, 3, [], [])
    finished = Harness(settings, compatible).start()
    try:
        for name, text in inputs.items():
            finished.wait_job(name, JobState.DONE)
            wanted = [json.loads(line)["custom_id"] for line in text.splitlines()]
            assert [r["custom_id"] for r in finished.results(name)] == wanted
    finally:
        finished.stop()
    assert batch_posts(compatible) == 3, "never a second batch"
