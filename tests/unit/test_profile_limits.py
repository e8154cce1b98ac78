"""Token-limit learning and model holds are per provider profile: what one service says about its
queue for a model (an Azure deployment) never holds back another service's model of the same name."""

from __future__ import annotations

from daemon.cli.status_waits import WaitFacts, job_wait
from daemon.service.holds import TOKEN_LIMIT_RETRY, Holds
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.state.token_limits import known_limit
from tests.support import FakeClock

MODEL = "gpt-4o-mini"
FULL = "Enqueued token limit reached for gpt-4o-mini in organization org-x. Limit: 90,000 enqueued tokens."


def _job(store: Store, job_id: str, profile: str, now: float) -> Job:
    job = Job(job_id, "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, now, now, model=MODEL, profile=profile)
    store.add_job(job)
    return job


def _part(store: Store, job_id: str, state: PartState, est_tokens: int, now: float, segment: int = 0) -> Part:
    return store.add_part(Part(job_id, segment, 0, "p", 1, 1, 10, est_tokens, state, now, now))


def test_a_limit_learned_on_one_profile_is_that_profiles_alone(store: Store) -> None:
    holds = Holds(store, FakeClock())
    assert holds.note_token_limit(MODEL, FULL, "azure") == 90_000
    assert known_limit(store, MODEL, "azure") == 90_000
    assert known_limit(store, MODEL) is None, "OpenAI's model of the same name learned nothing"
    assert holds.note_token_limit(MODEL, "queue full, no number", "groq") is None
    assert holds.note_token_limit(MODEL, "queue full, no number", "azure") == 90_000, "the one learned before"


def test_a_limit_recorded_before_profiles_stays_the_default_profiles(store: Store) -> None:
    store.set_fact(f"token_limit:{MODEL}", "2000000")  # as a state written before profiles holds it
    assert known_limit(store, MODEL) == 2_000_000
    assert known_limit(store, MODEL, "default") == 2_000_000
    assert known_limit(store, MODEL, "azure") is None


def test_a_model_hold_on_one_profile_leaves_the_other_going(store: Store) -> None:
    clock = FakeClock()
    holds = Holds(store, clock)
    start = clock.now()
    holds.hold_model(MODEL, 90_000, "azure")
    assert holds.model_wait(MODEL, 10, 0, start, "azure") == TOKEN_LIMIT_RETRY
    assert holds.model_wait(MODEL, 10, 0, start) == 0.0, "the default profile's model of that name goes on"
    assert holds.model_turn(MODEL, "azure") is not holds.model_turn(MODEL), "one turn per service's queue"
    assert holds.model_turn(MODEL, "azure") is holds.model_turn(MODEL, "azure")


def test_a_full_queue_is_weighed_on_its_own_profile(store: Store) -> None:
    holds = Holds(store, FakeClock())
    holds.note_token_limit(MODEL, FULL.replace("90,000", "200"), "azure")
    assert holds.model_wait(MODEL, 100, 150, 0.0, "azure") > 0, "150 queued + 100 would overflow 200"
    assert holds.model_wait(MODEL, 100, 150, 0.0) == 0.0, "no limit learned on the default profile"


def test_enqueued_tokens_count_each_profiles_batches(store: Store) -> None:
    now = FakeClock().now()
    _job(store, "openai", "default", now)
    _job(store, "azure", "azure", now)
    _part(store, "openai", PartState.SUBMITTED, 150, now)
    _part(store, "azure", PartState.SUBMITTED, 40, now)
    _part(store, "azure", PartState.UPLOADED, 1000, now, segment=1)  # not enqueued yet
    assert store.enqueued_tokens(MODEL) == 150
    assert store.enqueued_tokens(MODEL, "azure") == 40
    assert store.enqueued_tokens_by_profile_model() == {("default", MODEL): 150, ("azure", MODEL): 40}


def test_status_shows_a_hold_only_on_the_held_profiles_jobs(store: Store) -> None:
    clock = FakeClock()
    now = clock.now()
    held, free = _job(store, "azure", "azure", now), _job(store, "openai", "default", now)
    parts = {j.id: [_part(store, j.id, PartState.UPLOADED, 10, now)] for j in (held, free)}
    Holds(store, clock).hold_model(MODEL, 90_000, "azure")
    facts = WaitFacts(store)
    hold = job_wait(held, parts[held.id], facts, now)["hold"]
    assert hold is not None and hold["kind"] == "token_limit" and hold["until"] == now + TOKEN_LIMIT_RETRY
    assert job_wait(free, parts[free.id], facts, now)["hold"] is None
