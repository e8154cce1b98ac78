"""Fair lanes: a big input, a burst of downloads or a burst of uploads never holds up the other kinds of work.

Each test keeps one lane fully busy with a call the emulator holds (a "hold" fault, released by the
test), then shows that the work of another lane still gets done meanwhile. Every lane has one worker
here, so with a single shared pool the held call would stop everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState
from tests.support import Harness, ShiftedClock, request_file, wait_until

BIG = 100_000  # bytes: inputs above this are big here
WAIT = 20.0
TIMEOUT = 120.0  # request_timeout: the client waits out every hold (an abandoned call would free its worker)


@pytest.fixture(name="clock")
def clock_fixture() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(name="emulator")
def emulator_fixture(tmp_path: Path, clock: ShiftedClock) -> Iterator[EmulatorServer]:
    """Batches run a minute on the emulator's clock: they finish only when the test moves it on."""
    settings = EmulatorSettings(
        validating_seconds=60, in_progress_seconds=60, finalizing_seconds=0.05, data_dir=tmp_path / "emulator-data"
    )
    with EmulatorServer(settings, clock=clock) as server:
        yield server


def has_batch(harness: Harness, name: str) -> bool:
    """Whether the input's batch exists (its part was submitted)."""
    job = harness.job(name)
    assert harness.store is not None
    return job is not None and any(p.batch_id for p in harness.store.parts(job.id))


def held(emulator: EmulatorServer, what: str) -> None:
    wait_until(lambda: emulator.faults.holding == 1, WAIT, what)


def finish(harness: Harness, clock: ShiftedClock, *names: str) -> None:
    """Once every input has its batch, let the batches complete, and wait for the results."""
    wait_until(lambda: all(has_batch(harness, name) for name in names), WAIT, "every batch")
    clock.offset += 600
    for name in names:
        harness.wait_job(name, timeout=WAIT)


def test_a_small_input_is_submitted_while_the_big_lane_is_busy(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, clock: ShiftedClock
) -> None:
    # pack_wait is long: a small input that took the big one being split for company would wait it out.
    harness = harness_factory(
        workers=1, big_input_workers=1, big_input_bytes=BIG, pack_wait=60, request_timeout=TIMEOUT
    ).start()
    emulator.faults.add_rule(action="hold", method="POST", path_prefix="/v1/files", min_bytes=BIG, count=2)
    try:
        harness.drop("big.jsonl", request_file(1100, prefix="b"))
        held(emulator, "the big input's upload to be held")
        harness.drop("big2.jsonl", request_file(1100, prefix="c"))
        harness.wait_job("big2.jsonl", JobState.CLAIMED)
        harness.drop("small.jsonl", request_file(2))
        wait_until(lambda: has_batch(harness, "small.jsonl"), WAIT, "the small input's batch")
        assert emulator.faults.holding == 1 and not has_batch(harness, "big.jsonl"), "big's upload was in flight"
        big2 = harness.job("big2.jsonl")
        assert big2 is not None and big2.state == JobState.CLAIMED, "the big lane is bounded: big2 waits its turn"
    finally:
        emulator.faults.release()
    finish(harness, clock, "big.jsonl", "big2.jsonl", "small.jsonl")


def test_collection_goes_on_while_every_submission_worker_is_busy(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, clock: ShiftedClock
) -> None:
    harness = harness_factory(workers=1, request_timeout=TIMEOUT).start()
    harness.drop("a.jsonl", request_file(2))
    wait_until(lambda: has_batch(harness, "a.jsonl"), WAIT, "a's batch")
    emulator.faults.add_rule(action="hold", method="POST", path_prefix="/v1/files")
    try:
        harness.drop("b.jsonl", request_file(2))
        held(emulator, "b's upload to be held")
        clock.offset += 600  # a's batch completes
        harness.wait_job("a.jsonl", timeout=WAIT)  # downloaded and merged meanwhile
        assert emulator.faults.holding == 1 and not has_batch(harness, "b.jsonl"), "b's upload was in flight"
    finally:
        emulator.faults.release()
    finish(harness, clock, "b.jsonl")


def test_submission_goes_on_while_every_collection_worker_is_busy(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, clock: ShiftedClock
) -> None:
    harness = harness_factory(workers=1, request_timeout=TIMEOUT).start()
    harness.drop("a.jsonl", request_file(2))
    wait_until(lambda: has_batch(harness, "a.jsonl"), WAIT, "a's batch")
    emulator.faults.add_rule(action="hold", method="GET", path_prefix="/v1/files/")  # a's download
    try:
        clock.offset += 600  # a's batch completes
        held(emulator, "a's download to be held")
        harness.drop("b.jsonl", request_file(2))
        wait_until(lambda: has_batch(harness, "b.jsonl"), WAIT, "b's batch")
        a = harness.job("a.jsonl")
        assert emulator.faults.holding == 1 and a is not None and a.state == JobState.ACTIVE, (
            "a's download was in flight"
        )
    finally:
        emulator.faults.release()
    finish(harness, clock, "a.jsonl", "b.jsonl")
