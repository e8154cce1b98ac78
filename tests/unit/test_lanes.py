"""Lanes: pools by kind of work, and which lane each step goes to."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.engine.lane_router import LaneRouter
from daemon.intake.arrivals import small_arrivals
from daemon.lanes import Lane, Lanes
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.workers import Workers
from tests.support import wait_until

BIG = 1_000
SUBMIT = (PartState.READY,)


@pytest.fixture(name="lanes")
def lanes_fixture() -> Iterator[Lanes]:
    lanes = Lanes({Lane.SUBMIT: 1, Lane.BIG: 1, Lane.COLLECT: 1}, lambda size: Workers(size, lambda: None))
    lanes.start()
    yield lanes
    lanes.stop(0.0, threading.Event())


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "db.sqlite3")
    yield store
    store.close()


def blocked_on(gate: threading.Event) -> Callable[[], None]:
    def step() -> None:
        gate.wait(10.0)

    return step


def test_a_full_lane_leaves_the_others_free(lanes: Lanes) -> None:
    gate, ran = threading.Event(), threading.Event()
    assert lanes.submit(Lane.BIG, ("prepare", "big"), blocked_on(gate))
    assert lanes.submit(Lane.BIG, ("prepare", "big2"), ran.set)  # queued behind the first: the lane is bounded
    done = {lane: threading.Event() for lane in (Lane.SUBMIT, Lane.COLLECT)}
    for lane, event in done.items():
        assert lanes.submit(lane, ("step", lane.value), event.set)
    for event in done.values():
        assert event.wait(5.0), "a step of another lane ran while the big lane was full"
    assert not ran.is_set()
    gate.set()
    assert ran.wait(5.0)
    wait_until(lanes.idle, 5.0, "every lane idle")


def test_a_key_busy_in_one_lane_is_not_queued_in_another(lanes: Lanes) -> None:
    gate = threading.Event()
    assert lanes.submit(Lane.SUBMIT, ("part", 1), blocked_on(gate))
    assert lanes.busy(("part", 1))
    assert not lanes.submit(Lane.COLLECT, ("part", 1), lambda: None)
    gate.set()
    wait_until(lambda: not lanes.busy(("part", 1)), 5.0, "the step to end")
    assert lanes.submit(Lane.COLLECT, ("part", 1), lambda: None)


def claimed(store: Store, tmp_path: Path, name: str, size: int) -> str:
    now = time.time()
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    store.add_job(Job(name, name, str(path), str(path), JobState.CLAIMED, now, now))
    return name


def test_big_inputs_are_prepared_alone_in_the_big_lane(store: Store, tmp_path: Path) -> None:
    ids = [claimed(store, tmp_path, f"s{i}", 10) for i in range(5)]
    ids.insert(2, claimed(store, tmp_path, "big", BIG + 1))
    ids.append(claimed(store, tmp_path, "edge", BIG))  # not above the threshold: small
    router = LaneRouter(Settings(root=tmp_path, big_input_bytes=BIG), store, chunk=3)
    assert list(router.preparation(ids)) == [
        (Lane.BIG, ["big"]),
        (Lane.SUBMIT, ["s0", "s1", "s2"]),
        (Lane.SUBMIT, ["s3", "s4", "edge"]),
    ]


def test_parts_of_a_big_input_are_submitted_in_the_big_lane(store: Store, tmp_path: Path) -> None:
    now = time.time()
    parts = {}
    for name, input_size, part_size in (("small", 500, 500), ("big", 5 * BIG, 800), ("fat", 900, BIG + 1)):
        store.add_job(Job(name, name, "", "", JobState.CLAIMED, now, now))
        store.update_job(name, state=JobState.ACTIVE, size=input_size)
        part = Part(name, 0, 0, "", 1, 1, part_size, 1, PartState.READY, now, now)
        parts[name] = store.add_part(part).id
    router = LaneRouter(Settings(root=tmp_path, big_input_bytes=BIG), store, chunk=50)
    lanes = {part_id: lane for lane, part_id in router.submission(SUBMIT, now + 1)}
    assert lanes == {parts["small"]: Lane.SUBMIT, parts["big"]: Lane.BIG, parts["fat"]: Lane.BIG}


def test_a_big_input_is_no_company_for_small_ones(store: Store, tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, big_input_bytes=BIG)
    claimed(store, tmp_path, "big", BIG + 1)
    claimed(store, tmp_path, "small", 10)
    assert small_arrivals(settings, store, 2) == 1
    claimed(store, tmp_path, "small2", 10)
    assert small_arrivals(settings, store, 2) == 2
