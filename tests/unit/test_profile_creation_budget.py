"""The hourly creation budget per provider profile: each service has its own limit, so the creates
counted against a profile are those of its own jobs' parts. Creates on Azure neither hold an OpenAI
create back nor make an OpenAI input wait for company."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.intake.creation_budget import CreationBudget
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits
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


def add_job(store: Store, profile: str, name: str = "in.jsonl") -> Job:
    job = Job(f"{profile}-{time.perf_counter_ns()}", name, "", "", JobState.ACTIVE, 0.0, 0.0, profile=profile)
    store.add_job(job)
    return job


def created(store: Store, profile: str, *times: float) -> None:
    """Batches created at ``times`` on ``profile``, each its own job's part."""
    for t in times:
        job = add_job(store, profile)
        part = Part(
            job.id, 0, 0, "p", 1, 2, 10, 3, PartState.SUBMITTED, t, t, batch_id=f"batch_{job.id}", submitted_at=t
        )
        store.add_part(part)


def test_creates_are_counted_on_their_jobs_profile(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    now = FakeClock().now()
    created(store, "azure", *[now - 10.0] * 3)
    created(store, "default", now - 10.0)
    store.add_part(Part(add_job(store, "azure").id, 0, 0, "b", 1, 2, 10, 3, PartState.UPLOADED, now, now))
    budget = CreationBudget(settings, store)
    assert budget.used(now, "azure") == 3 + 1
    assert budget.used(now, "default") == 1
    assert budget.used(now, "groq") == 0
    assert budget.used(now) == 5, "without a profile: all of them, as before profiles"


def test_a_spent_budget_on_one_profile_holds_only_its_creates(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    now = FakeClock().now()
    created(store, "azure", *[now - 95.0 + i for i in range(BUDGET)])
    budget = CreationBudget(settings, store)
    assert budget.create_wait(now, "azure") == pytest.approx(5.0)  # when its oldest leaves the window
    assert budget.create_wait(now, "default") == 0.0, "OpenAI's hourly limit is its own"
    store.add_part(Part(add_job(store, "default").id, 0, 0, "p", 1, 2, 10, 3, PartState.BATCH_INTENT, now, now))
    assert budget.create_wait(now, "azure") == pytest.approx(5.0), "another profile's create under way"


def waiting_input(settings: Settings, store: Store, profile: str) -> Part:
    """A small input of ``profile`` checked just now, waiting for company, alone in the queue."""
    job = add_job(store, profile, name="small.jsonl")
    checked_at = time.time()
    own_file = settings.state / f"{job.id}.jsonl"
    own_file.write_text(request_file(2))
    return store.add_part(Part(job.id, 0, 0, str(own_file), 1, 2, 10, 3, PartState.WAITING, checked_at, checked_at))


def test_a_budget_filling_on_one_profile_makes_only_its_inputs_wait(budgeted: tuple[Settings, Store]) -> None:
    settings, store = budgeted
    created(store, "azure", *[time.time() - 50.0] * BUDGET)  # azure's budget spent: its inputs wait
    azure, openai = waiting_input(settings, store, "azure"), waiting_input(settings, store, "default")
    Packer(settings, store, batch_limits(settings), lambda: None).run()
    assert store.part(azure.id).state == PartState.WAITING
    assert store.part(openai.id).state == PartState.READY, "alone in OpenAI's queue, it goes at once"
