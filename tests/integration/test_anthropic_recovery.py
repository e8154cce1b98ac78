"""`batchd recover` for a profile of kind anthropic: Message Batches carry no metadata, so a lost
state's parts are matched with the listed batches by request count and, once a batch ended, by
the custom_ids of its results (ops/unlabelled_batches.py).

The daemon runs in-process against the emulator's anthropic flavour (real HTTP), with the
emulator's clock stopped while batches must stay running; `recover_state` uses the same services
`batchd recover` connects. Creates are counted at the emulator: nothing paid for is sent again.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.recover import Recovered, recover_state
from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.providers import DEFAULT_PROFILE
from daemon.service.credentials import KeySource
from daemon.service.profile_services import ProfileServices, service_for
from daemon.state import folders
from daemon.state.states import JobState
from tests.integration.test_anthropic_profile import claude_lines, creates
from tests.support import FAST, TEST_KEY, Harness, fast_settings, lose_state, wait_until
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests

PROFILE = "claude"


class StoppableClock:
    """The emulator's clock: the wall clock, or stopped (batches do not move on while it is)."""

    def __init__(self) -> None:
        self.stopped_at: float | None = None

    def __call__(self) -> float:
        return time.time() if self.stopped_at is None else self.stopped_at

    def stop(self) -> None:
        self.stopped_at = time.time()

    def go(self) -> None:
        self.stopped_at = None


@pytest.fixture(name="clock")
def clock_fixture() -> StoppableClock:
    return StoppableClock()


@pytest.fixture(name="claude")
def claude_fixture(tmp_path: Path, clock: StoppableClock) -> Iterator[EmulatorServer]:
    values = {**FAST, "data_dir": tmp_path / "claude", "flavour": "anthropic"}
    with EmulatorServer(EmulatorSettings(**values), clock=clock) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, claude: EmulatorServer, openai_server: EmulatorServer) -> Settings:
    config = tmp_path / "batchd.toml"
    config.write_text(
        f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n'
        f'[providers.{PROFILE}]\nkind = "anthropic"\nbase_url = "{claude.base_url}"\nmax_requests_per_batch = 3\n',
        encoding="utf-8",
    )
    root = tmp_path / "root"
    root.mkdir()
    providers = load_settings(config, environ={}).providers
    return fast_settings(root, openai_server.base_url, providers=providers, pack_inputs_up_to=0)


def recover(settings: Settings) -> Recovered:
    """`batchd recover`, with the services it connects (one per configured profile)."""
    key = KeySource("test key", value=TEST_KEY)
    profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
    services = ProfileServices({n: service_for(p, key, settings.request_timeout) for n, p in profiles.items()})
    try:
        return recover_state(settings, services)
    finally:
        services.close()


def sent_then_lost(settings: Settings, claude: EmulatorServer, inputs: dict[str, str], batches: int) -> None:
    """Drop ``inputs``, run the daemon until the service holds ``batches`` batches (none can end:
    the caller stopped the emulator's clock), stop it and lose the state database."""
    harness = Harness(settings, claude).start()
    try:
        for name, data in inputs.items():
            harness.drop(name, data, folder=PROFILE)
        wait_until(lambda: len(claude.batches()) >= batches, 30, f"{batches} batch(es) created")
    finally:
        harness.stop()
    lose_state(settings.root)


def let_end(clock: StoppableClock, claude: EmulatorServer) -> None:
    """Start the emulator's clock again and wait until every batch has ended (a batch created just
    before it stopped still has the rest of its run to go)."""
    clock.go()
    ended = lambda: all(b["processing_status"] == "ended" for b in claude.batches())  # noqa: E731
    wait_until(ended, 30, "every batch to end")


def recover_ended_or_running(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock, running: bool
) -> tuple[int, Recovered]:
    """Let every batch end unless ``running``, then `batchd recover`: the creates made before it, and what it did."""
    if not running:
        let_end(clock, claude)
    return creates(claude), recover(settings)


def finish(settings: Settings, claude: EmulatorServer, names: list[str]) -> dict[str, list[dict[str, object]]]:
    """Run the daemon until every input in ``names`` is done; their results."""
    harness = Harness(settings, claude).start()
    try:
        for name in names:
            harness.wait_job(name, JobState.DONE, timeout=60)
        return {name: harness.results(name) for name in names}
    finally:
        harness.stop()


def ids_of(results: list[dict[str, object]]) -> list[object]:
    return [line["custom_id"] for line in results]


def inflight(settings: Settings) -> list[Path]:
    return sorted((settings.state / folders.INFLIGHT).iterdir())


def test_ended_batches_are_adopted_and_collected_and_nothing_is_created_again(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock
) -> None:
    clock.stop()
    sent_then_lost(settings, claude, {"seven.jsonl": claude_lines(7, prefix="s")}, batches=3)  # parts of 3, 3, 1
    let_end(clock, claude)  # every batch ends, its results paid for
    made = creates(claude)
    done = recover(settings)
    assert (len(done.jobs), len(set(done.adopted_batches)), done.returned, done.left) == (1, 3, [], [])
    results = finish(settings, claude, ["seven.jsonl"])
    assert ids_of(results["seven.jsonl"]) == [f"s-{i}" for i in range(7)]
    assert {line["result"]["type"] for line in results["seven.jsonl"]} == {"succeeded"}  # type: ignore[index]
    assert (creates(claude), len(claude.batches())) == (made, 3), "nothing created again"


def test_a_running_batch_is_awaited_then_adopted_by_its_results_and_collected(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock
) -> None:
    clock.stop()
    sent_then_lost(settings, claude, {"two.jsonl": claude_lines(2, prefix="r")}, batches=1)
    made = creates(claude)
    done = recover(settings)  # the batch still runs: no results to read its custom_ids from
    assert (len(done.jobs), done.adopted_batches, done.returned, done.left) == (1, [], [], [])
    assert [batches for _, batches in done.awaiting] == [claude.batches()[0]["id"]]
    harness = Harness(settings, claude).start()
    try:
        assert harness.store is not None
        store = harness.store
        waited = lambda: any("may be it" in (p.last_error or "") for j in store.jobs() for p in store.parts(j.id))  # noqa: E731
        wait_until(waited, 30, "the daemon to look at the running batch and wait for it")
        assert creates(claude) == made, "nothing created while a batch that may be the part's runs"
        clock.go()
        harness.wait_job("two.jsonl", JobState.DONE, timeout=60)
        results = harness.results("two.jsonl")
    finally:
        harness.stop()
    assert ids_of(results) == ["r-0", "r-1"]
    assert (creates(claude), len(claude.batches())) == (made, 1)


@pytest.mark.parametrize("running", [False, True], ids=["ended", "running"])
def test_two_inputs_of_one_count_each_get_their_own_batch(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock, running: bool
) -> None:
    clock.stop()
    inputs = {"a.jsonl": claude_lines(3, prefix="a", text="A"), "b.jsonl": claude_lines(3, prefix="b", text="B")}
    sent_then_lost(settings, claude, inputs, batches=2)
    made, done = recover_ended_or_running(settings, claude, clock, running)
    assert (len(done.jobs), done.returned, done.left) == (2, [], [])
    assert (len(set(done.adopted_batches)), len(done.awaiting)) == ((0, 2) if running else (2, 0))
    clock.go()
    results = finish(settings, claude, list(inputs))
    assert ids_of(results["a.jsonl"]) == ["a-0", "a-1", "a-2"], "never the other input's batch"
    assert ids_of(results["b.jsonl"]) == ["b-0", "b-1", "b-2"]
    assert (creates(claude), len(claude.batches())) == (made, 2)


@pytest.mark.parametrize("running", [False, True], ids=["ended", "running"])
def test_two_inputs_with_the_same_custom_ids_and_count_are_held_not_guessed(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock, running: bool
) -> None:
    clock.stop()
    inputs = {"a.jsonl": claude_lines(3, prefix="q", text="A"), "b.jsonl": claude_lines(3, prefix="q", text="B")}
    sent_then_lost(settings, claude, inputs, batches=2)
    made, done = recover_ended_or_running(settings, claude, clock, running)
    assert (done.jobs, done.returned, done.awaiting) == ([], [], [])
    assert len(done.left) == 2 and all("same custom_ids" in why or "as they do" in why for _, why in done.left)
    assert len(inflight(settings)) == 2, "both inputs kept where they are, for a person to decide"
    assert not list(settings.pending.rglob("*.jsonl"))
    assert creates(claude) == made


def test_an_input_with_no_batch_is_given_back_and_sent_once_beside_a_strangers_batch(
    settings: Settings, claude: EmulatorServer
) -> None:
    claude.faults.add_rule(action="status", method="POST", path_prefix="/v1/messages/batches", status=500, count=1000)
    harness = Harness(settings, claude).start()
    try:
        harness.drop("never.jsonl", claude_lines(2, prefix="n"), folder=PROFILE)
        wait_until(lambda: claude.faults.fired >= 1, 30, "a create refused")
    finally:
        harness.stop()
    claude.faults.clear()
    lose_state(settings.root)
    # Another program on the same account makes a batch of as many requests: it is not ours.
    stranger = anthropic_client(claude).messages.batches.create(requests=message_requests(2, prefix="x"))
    wait_until(lambda: claude.batches()[0]["processing_status"] == "ended", 30, "the stranger's batch to end")
    done = recover(settings)
    assert (done.jobs, done.left, done.awaiting) == ([], [], [])
    assert [Path(dest) for _, dest in done.returned] == [settings.pending / PROFILE / "never.jsonl"]
    results = finish(settings, claude, ["never.jsonl"])
    assert ids_of(results["never.jsonl"]) == ["n-0", "n-1"]
    ours = [b["id"] for b in claude.batches() if b["id"] != stranger.id]
    assert len(ours) == 1, "sent exactly once, the stranger's batch never taken for it"


def test_a_strangers_running_batch_of_the_same_count_holds_the_send_until_it_ends(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock
) -> None:
    claude.faults.add_rule(action="status", method="POST", path_prefix="/v1/messages/batches", status=500, count=1000)
    harness = Harness(settings, claude).start()
    try:
        harness.drop("never.jsonl", claude_lines(2, prefix="n"), folder=PROFILE)
        wait_until(lambda: claude.faults.fired >= 1, 30, "a create refused")
    finally:
        harness.stop()
    claude.faults.clear()
    lose_state(settings.root)
    clock.stop()
    stranger = anthropic_client(claude).messages.batches.create(requests=message_requests(2, prefix="x"))
    done = recover(settings)
    assert (done.returned, done.left, [b for _, b in done.awaiting]) == ([], [], [stranger.id])
    restarted = Harness(settings, claude).start()
    try:
        assert restarted.store is not None
        store = restarted.store
        waited = lambda: any(stranger.id in (p.last_error or "") for j in store.jobs() for p in store.parts(j.id))  # noqa: E731
        wait_until(waited, 30, "the daemon to wait for the stranger's running batch")
        assert len(claude.batches()) == 1, "not sent while a batch that may be its runs"
        clock.go()
        restarted.wait_job("never.jsonl", JobState.DONE, timeout=60)
        results = restarted.results("never.jsonl")
    finally:
        restarted.stop()
    assert ids_of(results) == ["n-0", "n-1"]
    assert len([b for b in claude.batches() if b["id"] != stranger.id]) == 1, "sent once, once the stranger's ended"


@pytest.mark.parametrize("running", [False, True], ids=["ended", "running"])
def test_a_shared_batch_is_matched_by_its_slot_prefixed_ids_and_each_member_gets_its_own_results(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock, running: bool
) -> None:
    packing = dataclasses.replace(settings, pack_inputs_up_to=1000, pack_wait=30.0)
    # One request each, the same custom_id in both: a batch of this profile takes three at most.
    inputs = {"a.jsonl": claude_lines(1, prefix="same", text="A"), "b.jsonl": claude_lines(1, prefix="same", text="B")}
    for name, data in inputs.items():  # both there before the daemon looks: one pass claims them together
        (packing.pending / PROFILE).mkdir(parents=True, exist_ok=True)
        (packing.pending / PROFILE / name).write_text(data, encoding="utf-8")
    clock.stop()
    sent_then_lost(packing, claude, {}, batches=1)
    assert claude.batches()[0]["request_counts"]["processing"] == 2, "the two inputs share one batch"
    made, done = recover_ended_or_running(packing, claude, clock, running)
    assert (len(done.jobs), done.returned, done.left) == (3, [], []), "the pack and its two members"
    assert (len(set(done.adopted_batches)), len(done.awaiting)) == ((0, 1) if running else (1, 0))
    clock.go()
    results = finish(packing, claude, list(inputs))
    for name in inputs:
        assert ids_of(results[name]) == ["same-0"]
        assert {line["result"]["type"] for line in results[name]} == {"succeeded"}  # type: ignore[index]
    assert (creates(claude), len(claude.batches())) == (made, 1)


@pytest.mark.parametrize("limit", [3, 10], ids=["split_now", "one_batch_now"])
def test_an_input_whose_part_files_are_gone_is_held_not_sent_again(
    settings: Settings, claude: EmulatorServer, limit: int
) -> None:
    """Five requests went as batches of three and two; then the database and state/parts/ were lost.
    With the same limits the input needs several batches (unmatchable by counts); with a larger
    limit since, it would fit one, but smaller batches made since its claim hold its custom_ids."""
    sent_then_lost(settings, claude, {"five.jsonl": claude_lines(5, prefix="f")}, batches=2)
    wait_until(lambda: all(b["processing_status"] == "ended" for b in claude.batches()), 30, "both batches to end")
    shutil.rmtree(settings.state / folders.PARTS)
    profile = dataclasses.replace(settings.providers[PROFILE], max_requests_per_batch=limit)
    changed = dataclasses.replace(settings, providers={**settings.providers, PROFILE: profile})
    made = creates(claude)
    done = recover(changed)
    assert (done.jobs, done.returned, done.awaiting) == ([], [], [])
    assert [Path(what).name for what, _ in done.left] == [inflight(changed)[0].name], "left where it is"
    assert "several batches" in done.left[0][1] if limit == 3 else "fewer requests" in done.left[0][1]
    assert creates(claude) == made and not list(changed.pending.rglob("*.jsonl")), "never sent again"


def test_an_anthropic_profile_that_cannot_be_listed_keeps_its_inputs_until_a_rerun_can(
    settings: Settings, claude: EmulatorServer, clock: StoppableClock
) -> None:
    sent_then_lost(settings, claude, {"four.jsonl": claude_lines(4, prefix="f")}, batches=2)
    held = inflight(settings)
    claude.faults.add_rule(action="status", method="GET", path_prefix="/v1/messages/batches", status=401, count=100)
    done = recover(settings)
    ((profile, why),) = done.unreachable
    assert profile == PROFILE and "refused the key" in why and f"[providers.{PROFILE}]" in why
    assert (done.jobs, done.returned, inflight(settings)) == ([], [], held), "its input left untouched"
    assert any("could not be searched" in reason for _, reason in done.left)
    claude.faults.clear()
    let_end(clock, claude)
    made = creates(claude)
    again = recover(settings)
    assert (len(again.jobs), again.unreachable, again.returned, again.left) == (1, [], [], [])
    assert ids_of(finish(settings, claude, ["four.jsonl"])["four.jsonl"]) == [f"f-{i}" for i in range(4)]
    assert creates(claude) == made, "nothing created again"
