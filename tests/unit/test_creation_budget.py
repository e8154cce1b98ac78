"""The hourly creation budget: counted from the state, and the pack wait stretched as it fills, never
past pack_wait_max; a create waits only once the whole budget is spent."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import Settings, validate
from daemon.errors import ConfigError
from daemon.intake.creation_budget import CreationBudget, stretched_wait
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import FakeClock, request_file

BUDGET, WINDOW, WAIT, BOUND = 10, 100.0, 0.5, 20.0


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    settings = Settings(
        root=tmp_path, creation_budget=BUDGET, creation_window=WINDOW, pack_wait=WAIT, pack_wait_max=BOUND
    )
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    yield settings, store
    store.close()


def add_job(
    store: Store, job_id: str, state: JobState = JobState.ACTIVE, name: str = "in.jsonl", profile: str = "default"
) -> Job:
    job = Job(job_id, name, "", "", state, 0.0, 0.0, profile=profile)
    store.add_job(job)
    return job


def created(store: Store, *times: float, profile: str = "default") -> None:
    """Batches created at ``times`` on ``profile``, each its own job's part, as the submitter records them."""
    for t in times:
        job = add_job(store, f"job-{t}-{time.perf_counter_ns()}", profile=profile)
        batch_id = f"batch_{job.id}"
        store.add_part(
            Part(job.id, 0, 0, "p", 1, 2, 10, 3, PartState.SUBMITTED, t, t, batch_id=batch_id, submitted_at=t)
        )


def test_the_wait_stretches_from_half_the_budget_up_to_the_bound() -> None:
    assert stretched_wait(0.0, WAIT, BOUND) == 0.0
    assert stretched_wait(0.49, WAIT, BOUND) == 0.0  # below half: the packer behaves as before
    assert stretched_wait(0.5, WAIT, BOUND) == WAIT
    assert stretched_wait(0.75, WAIT, BOUND) == pytest.approx((WAIT + BOUND) / 2)
    assert stretched_wait(1.0, WAIT, BOUND) == BOUND
    assert stretched_wait(7.0, WAIT, BOUND) == BOUND  # never past the bound, however far over


def test_creations_are_counted_in_the_window_from_the_state(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    clock = FakeClock()
    now = clock.now()
    created(store, now - 150.0, now - 90.0, now - 10.0)  # the first one has left the window
    pack = add_job(store, "pack")
    member = add_job(store, "member")
    store.add_part(
        Part(pack.id, 0, 0, "p", 1, 2, 10, 3, PartState.SUBMITTED, now, now, batch_id="batch_p", submitted_at=now)
    )
    # A pack member carries its pack's batch once unpacked: one batch, counted once.
    store.add_part(
        Part(member.id, 0, 0, "m", 1, 2, 10, 3, PartState.DOWNLOADED, now, now, batch_id="batch_p", submitted_at=now)
    )
    store.add_part(Part(add_job(store, "big").id, 0, 0, "b", 1, 2, 10, 3, PartState.UPLOADED, now, now))
    budget = CreationBudget(settings, store)
    assert budget.used(now) == 3 + 1  # three created in the window, one about to be
    assert budget.used(clock.advance(80.0)) == 2 + 1  # now - 90 has left the window too
    store.close()
    reopened = Store(settings.state / folders.DB_NAME)  # a restart keeps the count
    assert CreationBudget(settings, reopened).used(now) == 4
    reopened.close()


def test_a_create_waits_only_when_the_whole_budget_is_spent(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    now = FakeClock().now()
    budget = CreationBudget(settings, store)
    created(store, *[now - 95.0 + i for i in range(BUDGET - 1)])
    assert budget.create_wait(now) == 0.0  # one left
    created(store, now - 1.0)
    assert budget.create_wait(now) == pytest.approx(5.0)  # when the oldest (now - 95) leaves the window
    assert budget.create_wait(now + 5.0) == 0.0
    created(store, now)  # one over (a parallel create went through): two must leave first
    assert budget.create_wait(now) == pytest.approx(6.0)
    store.add_part(Part(add_job(store, "under-way").id, 0, 0, "p", 1, 2, 10, 3, PartState.BATCH_INTENT, now, now))
    assert budget.create_wait(now) == pytest.approx(7.0)  # another worker's create counts as made


def waiting_input(settings: Settings, store: Store, age: float, profile: str = "default") -> Part:
    """A small input of ``profile`` checked ``age`` seconds ago, waiting for company, alone in the queue."""
    job = add_job(store, f"in-{age}-{time.perf_counter_ns()}", name="small.jsonl", profile=profile)
    checked_at = time.time() - age
    own_file = settings.state / f"{job.id}.jsonl"  # its part file: the packer reads it
    own_file.write_text(request_file(2))
    return store.add_part(Part(job.id, 0, 0, str(own_file), 1, 2, 10, 3, PartState.WAITING, checked_at, checked_at))


def pack_once(settings: Settings, store: Store, part: Part) -> PartState:
    Packer(settings, store, batch_limits(settings), lambda: None).run()
    return store.part(part.id).state


@pytest.mark.parametrize(
    ("used", "age", "state"),
    [
        (0, 0.0, PartState.READY),  # a budget barely used: alone in the queue, it goes at once
        (4, 0.0, PartState.READY),
        (6, 4.0, PartState.WAITING),  # 6 of 10 used: wait 0.5 + 19.5 * 0.2 = 4.4 s
        (6, 4.6, PartState.READY),
        (10, 19.0, PartState.WAITING),  # all used: the bound
        (10, 20.5, PartState.READY),  # never held past pack_wait_max
        (25, 20.5, PartState.READY),
    ],
)
def test_a_small_input_waits_longer_for_company_as_the_budget_fills(
    budgeted: tuple[Settings, Store], used: int, age: float, state: PartState
) -> None:
    settings, store = budgeted
    now = time.time()
    created(store, *[now - 50.0] * used)
    part = waiting_input(settings, store, age)
    assert pack_once(settings, store, part) == state


def test_a_lone_small_input_waits_for_company_once_the_budget_is_half_used(
    budgeted: tuple[Settings, Store],
) -> None:
    settings, store = budgeted
    created(store, *[time.time() - 50.0] * (BUDGET // 2))
    inflight = settings.state / folders.INFLIGHT / "job-a.jsonl"
    inflight.write_text(request_file(3))
    job = Job("job-a", "a.jsonl", str(settings.pending / "a.jsonl"), str(inflight), JobState.CLAIMED, 0.0, 0.0)
    store.add_job(job)
    prepare_jobs(settings, store, [job])
    (part,) = store.parts(job.id)
    assert part.state == PartState.WAITING


def test_the_bound_may_not_be_shorter_than_the_pack_wait(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pack_wait_max"):
        validate(dataclasses.replace(Settings(root=tmp_path), pack_wait=5.0, pack_wait_max=1.0))
    with pytest.raises(ConfigError, match="creation_budget"):
        validate(dataclasses.replace(Settings(root=tmp_path), creation_budget=0))


# Per provider profile: each service has its own hourly limit, so the creates counted against a profile
# are those of its own jobs' parts. Creates on Azure neither hold an OpenAI create back nor make an
# OpenAI input wait for company.


def profile_job(store: Store, profile: str) -> Job:
    return add_job(store, f"{profile}-{time.perf_counter_ns()}", profile=profile)


def test_creates_are_counted_on_their_jobs_profile(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    now = FakeClock().now()
    created(store, *[now - 10.0] * 3, profile="azure")
    created(store, now - 10.0, profile="default")
    store.add_part(Part(profile_job(store, "azure").id, 0, 0, "b", 1, 2, 10, 3, PartState.UPLOADED, now, now))
    budget = CreationBudget(settings, store)
    assert budget.used(now, "azure") == 3 + 1
    assert budget.used(now, "default") == 1
    assert budget.used(now, "groq") == 0
    assert budget.used(now) == 5, "without a profile: all of them, as before profiles"


def test_a_spent_budget_on_one_profile_holds_only_its_creates(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    now = FakeClock().now()
    created(store, *[now - 95.0 + i for i in range(BUDGET)], profile="azure")
    budget = CreationBudget(settings, store)
    assert budget.create_wait(now, "azure") == pytest.approx(5.0)  # when its oldest leaves the window
    assert budget.create_wait(now, "default") == 0.0, "OpenAI's hourly limit is its own"
    store.add_part(Part(profile_job(store, "default").id, 0, 0, "p", 1, 2, 10, 3, PartState.BATCH_INTENT, now, now))
    assert budget.create_wait(now, "azure") == pytest.approx(5.0), "another profile's create under way"


def test_a_budget_filling_on_one_profile_makes_only_its_inputs_wait(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    created(store, *[time.time() - 50.0] * BUDGET, profile="azure")  # azure's budget spent: its inputs wait
    azure, openai = waiting_input(settings, store, 0.0, "azure"), waiting_input(settings, store, 0.0)
    Packer(settings, store, batch_limits(settings), lambda: None).run()
    assert store.part(azure.id).state == PartState.WAITING
    assert store.part(openai.id).state == PartState.READY, "alone in OpenAI's queue, it goes at once"
