"""The engine's timing rules on a clock the test moves by hand: ``run_once(now)`` hands out a part
only once its back-off is over, the loop's next wake-up is its earliest timer (rescan, heartbeat, a
due part, a cooldown's end, a waiting pack), a failed step cools down by the clock, small inputs wait
``pack_wait`` for company, and account holds end by the engine's clock. No thread starts before
``start``, and none of it waits for real time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.emulator import EmulatorServer
from daemon.engine.main_loop import MIN_PASS_GAP, SETTLE_LOOK, Engine
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits
from daemon.intake.watcher import Hint
from daemon.lanes import Lane
from daemon.ops.signals import StopFlags
from daemon.service.credentials import KeySource
from daemon.service.holds import ACCOUNT_RETRY
from daemon.service.openai_service import OpenAIService
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.workers import FIRST_COOLDOWN, Workers
from tests.support import TEST_KEY, FakeClock, request_line, wait_until

TIMER = 10.0  # the rescan and the heartbeat: every other timer below comes before them
PACK_WAIT = 5.0


@dataclass
class Rig:
    engine: Engine
    store: Store
    clock: FakeClock
    settings: Settings


@pytest.fixture(name="rig")
def rig_fixture(tmp_path: Path, emulator: EmulatorServer) -> Iterator[Rig]:
    """An engine on a fake clock, built but not started: its workers take nothing off their queue."""
    settings = Settings(
        root=tmp_path, base_url=emulator.base_url, scan_interval=TIMER, heartbeat_interval=TIMER, pack_wait=PACK_WAIT
    )
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
    clock = FakeClock()
    engine = Engine(settings, store, remote, StopFlags(), clock=clock)
    yield Rig(engine, store, clock, settings)
    engine.bell.close()
    remote.close()
    store.close()


def _part(store: Store, clock: FakeClock, state: PartState, due_in: float, name: str = "a") -> Part:
    now = clock.now()
    job = Job(name, f"{name}.jsonl", f"{name}.jsonl", f"{name}.jsonl", JobState.ACTIVE, now, now)
    job.endpoint, job.model = "/v1/chat/completions", "gpt-4o-mini"
    store.add_job(job)
    part = Part(name, 0, 0, "p", 1, 1, 10, 3, state, now, now, next_action_at=now + due_in)
    return store.add_part(part)


def test_building_the_engine_starts_no_thread(tmp_path: Path, emulator: EmulatorServer) -> None:
    settings = Settings(root=tmp_path, base_url=emulator.base_url)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
    before = {t.ident for t in threading.enumerate()}
    engine = Engine(settings, store, remote, StopFlags())
    try:
        assert {t.ident for t in threading.enumerate()} == before
        assert engine.observer is None  # watchdog's constructors start threads: built in start()
    finally:
        engine.bell.close()
        remote.close()
        store.close()


def test_a_part_in_back_off_is_handed_out_only_once_it_is_due(rig: Rig) -> None:
    part = _part(rig.store, rig.clock, PartState.READY, due_in=30.0)  # as a failed upload leaves it
    rig.engine.run_once(rig.clock.now())
    assert not rig.engine.workers.busy(("part", part.id))
    rig.clock.advance(29.0)
    rig.engine.run_once(rig.clock.now())
    assert not rig.engine.workers.busy(("part", part.id))
    rig.clock.advance(1.0)
    rig.engine.run_once(rig.clock.now())
    assert rig.engine.workers.busy(("part", part.id))


def test_the_loop_sleeps_until_its_earliest_timer(rig: Rig) -> None:
    start = rig.clock.now()
    rig.engine.run_once(start)
    assert rig.engine.wake_time(start) == start + TIMER  # nothing else to do: the rescan and the heartbeat
    _part(rig.store, rig.clock, PartState.READY, due_in=7.0)
    _part(rig.store, rig.clock, PartState.SUBMITTED, due_in=3.0, name="b")  # the poller's, not the loop's
    assert rig.engine.wake_time(start) == start + 7.0
    rig.clock.advance(TIMER)
    rig.engine.run_once(rig.clock.now())  # hands the part out, rescans, beats
    assert rig.engine.wake_time(rig.clock.now()) == rig.clock.now() + TIMER
    beat = json.loads(rig.store.fact("heartbeat") or "{}")
    assert beat["at"] == rig.clock.now()


def test_a_waiting_small_input_wakes_the_loop_when_its_pack_wait_may_be_over(rig: Rig) -> None:
    _part(rig.store, rig.clock, PartState.WAITING, due_in=0.0)
    rig.engine.run_once(rig.clock.now())
    assert rig.engine.wake_time(rig.clock.now()) == rig.clock.now() + max(PACK_WAIT, MIN_PASS_GAP)


def test_a_closed_file_is_claimed_once_quiet_for_settle_seconds_and_the_loop_looks_again_meanwhile(rig: Rig) -> None:
    path = rig.settings.pending / "append.jsonl"
    path.write_text(request_line("a") + "\n", encoding="utf-8")
    rig.engine.hints.put(Hint(path, complete=True, closed=True))  # the writer closed it: it may append again
    start = rig.clock.now()
    rig.engine.run_once(start)
    assert rig.store.job_ids(JobState.CLAIMED) == []
    settle = rig.settings.settle_seconds
    assert rig.engine.wake_time(start) == start + min(max(settle / 4, MIN_PASS_GAP), SETTLE_LOOK)
    rig.clock.advance(settle)
    rig.engine.run_once(rig.clock.now())
    assert len(rig.store.job_ids(JobState.CLAIMED)) == 1


def test_a_failed_step_cools_down_by_the_clock_and_the_loop_wakes_when_it_ends(rig: Rig) -> None:
    workers = rig.engine.workers
    workers.start()
    try:
        failing = threading.Event()

        def fail() -> None:
            failing.set()
            raise OSError(28, "No space left on device")

        start = rig.clock.now()
        rig.engine.run_once(start)  # sets the rescan and the heartbeat TIMER ahead
        assert workers.submit(Lane.COLLECT, ("hygiene",), fail)
        wait_until(lambda: failing.is_set() and workers.idle(), 5, "the step to fail")
        assert not workers.submit(Lane.COLLECT, ("hygiene",), fail)  # cooling down
        assert workers.next_ready() == start + FIRST_COOLDOWN
        assert rig.engine.wake_time(start) == start + FIRST_COOLDOWN
        rig.clock.advance(FIRST_COOLDOWN)
        assert workers.next_ready() is None
        assert workers.submit(Lane.COLLECT, ("hygiene",), lambda: None)
        wait_until(workers.idle, 5, "the step to run")
    finally:
        workers.stop(0.0, threading.Event())


def test_workers_start_their_threads_in_start_only() -> None:
    before = threading.active_count()
    workers = Workers(3, lambda: None, FakeClock())
    assert threading.active_count() == before
    workers.start()
    assert threading.active_count() == before + 3
    workers.stop(0.0, threading.Event())


def test_an_account_hold_ends_on_the_engines_clock(rig: Rig) -> None:
    rig.engine.holds.block_account("billing hard limit reached")
    assert rig.engine.holds.account_wait(rig.clock.now()) == ACCOUNT_RETRY
    rig.clock.advance(ACCOUNT_RETRY)
    assert rig.engine.holds.account_wait(rig.clock.now()) == 0


def test_small_inputs_wait_pack_wait_for_company_then_share_one_batch(rig: Rig) -> None:
    settings, store, clock = rig.settings, rig.store, rig.clock
    waiting = []
    for name in ("a", "b"):
        path = settings.state / f"{name}.part.jsonl"
        path.write_text(request_line(f"{name}0") + "\n")
        part = _part(store, clock, PartState.WAITING, due_in=0.0, name=name)
        store.update_part(part.id, path=str(path))
        waiting.append(part.id)
    arriving = Job("c", "c.jsonl", "c.jsonl", "c.jsonl", JobState.CLAIMED, clock.now(), clock.now())
    store.add_job(arriving)  # another input on its way: the small ones linger for it
    packer = Packer(settings, store, batch_limits(settings), lambda: None, clock)
    clock.advance(PACK_WAIT - 1)
    packer.run()
    assert {store.part(i).state for i in waiting} == {PartState.WAITING}
    clock.advance(1)
    packer.run()
    assert {store.part(i).state for i in waiting} == {PartState.PACKED}
