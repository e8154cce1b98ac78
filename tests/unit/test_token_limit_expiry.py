"""A learned enqueued-token limit goes stale (token_limit_ttl): the service raises an account's limits
as its usage tier rises, so after the ttl the model's next batch goes without the learned cap, and the
service either takes it or names the limit again. A fresh limit still holds, a refusal naming a higher
limit replaces a lower one, and a limit recorded before batchd kept the time still reads, dated at the
daemon's start. Driven on a clock the test moves by hand, against the emulator's enqueued-token limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.cli.status import status_text
from daemon.config import Settings, load_settings
from daemon.errors import ConfigError
from daemon.ops.limit_gauges import limit_gauges
from daemon.service.holds import Holds
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.state.token_limits import known_limit, learned_limit_of
from tests.support import FakeClock, Harness, PartRig, part_rig, request_file

ENDPOINT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
TTL = 7 * 86400.0
LEARNED = 100  # the limit learned long ago; a request line is about 40 tokens by our estimate, 20 by the service's
RAISED = 1_000  # the account's limit now, its tier having risen
HIGHER = 300  # a limit above the learned one, that a small batch can find the queue full at
RUNNING = 1000.0  # fake seconds a batch stays in_progress
OLD_MESSAGE = f"Enqueued token limit reached for {MODEL} in organization org-x. Limit: {LEARNED:,} enqueued tokens."


class Rig(PartRig):
    def job(self) -> Job:
        now = self.clock.now()
        job = Job("20260101T000000Z-0000beef", "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, now, now,
                  model=MODEL, result_dir=str(self.tmp / "results"))  # fmt: skip
        job.endpoint = ENDPOINT
        self.store.add_job(job)
        return job

    def part(self, job: Job, requests: int) -> Part:
        """An uploaded part of ``requests`` requests, not yet a batch (about 40 tokens each)."""
        path = self.tmp / "0.0.jsonl"
        path.write_text(request_file(requests, model=MODEL))
        file_id = self.upload(path)
        now, size = self.clock.now(), path.stat().st_size
        part = Part(job.id, 0, 0, str(path), 1, requests, size, size // 4, PartState.UPLOADED, now, now,
                    file_id=file_id)  # fmt: skip
        return self.store.add_part(part)

    def send(self, part: Part) -> Part:
        """Submit ``part``, let the service validate it, and collect it if it ended; the part after."""
        self.submitter.advance(part.id)
        self.poller.poll_once(self.clock.advance(1.0))
        if self.store.part(part.id).state == PartState.FINISHED:
            self.collector.collect_part(part.id)
        return self.store.part(part.id)


def _rig(tmp_path: Path, service_limit: int) -> Iterator[Rig]:
    with part_rig(tmp_path, RUNNING, Rig, TTL, token_limit=service_limit) as rig:
        yield rig


@pytest.fixture(name="raised")
def raised_fixture(tmp_path: Path) -> Iterator[Rig]:
    """The account's limit has risen to RAISED since LEARNED was learned."""
    yield from _rig(tmp_path, RAISED)


@pytest.fixture(name="unchanged")
def unchanged_fixture(tmp_path: Path) -> Iterator[Rig]:
    """The account's limit is still LEARNED."""
    yield from _rig(tmp_path, LEARNED)


@pytest.fixture(name="higher")
def higher_fixture(tmp_path: Path) -> Iterator[Rig]:
    """The account's limit has risen to HIGHER since LEARNED was learned."""
    yield from _rig(tmp_path, HIGHER)


def test_a_limit_older_than_the_ttl_lets_a_bigger_batch_through_when_the_service_takes_it(raised: Rig) -> None:
    raised.holds.note_token_limit(MODEL, OLD_MESSAGE)
    raised.clock.advance(TTL + 60)
    part = raised.send(raised.part(raised.job(), 10))  # about 400 tokens: four times the learned limit
    assert part.est_tokens > LEARNED
    assert part.state == PartState.SUBMITTED, "sent whole, not split to fit the stale limit"
    (batch,) = raised.emulator.batches()
    assert batch["status"] == "in_progress", "the service took it: its limit is higher now"
    assert raised.holds.token_limit(MODEL) is None, "the stale limit caps nothing"


def test_a_stale_limit_refused_again_is_learned_afresh(unchanged: Rig) -> None:
    unchanged.holds.note_token_limit(MODEL, OLD_MESSAGE)
    unchanged.clock.advance(TTL + 60)
    part = unchanged.send(unchanged.part(unchanged.job(), 10))
    assert part.state == PartState.SUPERSEDED, "refused (not billed), then split to fit the limit named again"
    learned = learned_limit_of(unchanged.store, MODEL)
    assert learned is not None and learned.limit == LEARNED
    assert learned.learned_at == unchanged.clock.now(), "dated now: trusted for another ttl"
    assert unchanged.holds.token_limit(MODEL) == LEARNED


def test_a_fresh_limit_still_holds(raised: Rig) -> None:
    raised.holds.note_token_limit(MODEL, OLD_MESSAGE)
    raised.clock.advance(TTL - 60)
    part = raised.send(raised.part(raised.job(), 10))
    assert part.state == PartState.SUPERSEDED, "split to fit the learned limit before it was sent"
    assert raised.emulator.batches() == [], "nothing over the learned limit went to the service"
    assert raised.holds.token_limit(MODEL) == LEARNED


def test_a_refusal_naming_a_higher_limit_replaces_the_lower_one_at_once(higher: Rig) -> None:
    higher.holds.note_token_limit(MODEL, OLD_MESSAGE)
    higher.clock.advance(3600.0)  # an hour ago: fresh
    higher.fill_queue(MODEL, 14)  # another client of the account: about 280 of the service's tokens queued
    part = higher.send(higher.part(higher.job(), 2))  # about 80 tokens (40 for the service): fits 100
    assert part.state == PartState.UPLOADED, "refused for the full queue: held, to go again"
    learned = learned_limit_of(higher.store, MODEL)
    assert learned is not None and learned.limit == HIGHER, "the higher limit the service named"
    assert learned.learned_at == higher.clock.now() and "Limit: 300 enqueued tokens" in learned.message
    assert higher.holds.token_limit(MODEL) == HIGHER


def test_an_old_fact_without_a_time_still_reads_and_counts_from_the_daemons_start(
    prepared: tuple[Settings, Store],
) -> None:
    store = prepared[1]
    store.set_fact(f"token_limit:{MODEL}", str(LEARNED))  # as an older batchd recorded it
    store.set_fact(f"token_limit@azure:{MODEL}", "2000000")
    assert known_limit(store, MODEL) == LEARNED and known_limit(store, MODEL, "azure") == 2_000_000
    clock = FakeClock()
    started = clock.now()
    holds = Holds(store, clock, TTL)
    assert holds.token_limit(MODEL) == LEARNED, "read as before"
    holds.date_old_limits()
    learned = learned_limit_of(store, MODEL, "azure")
    assert learned is not None and learned.learned_at == started and learned.limit == 2_000_000
    clock.advance(TTL - 60)
    Holds(store, clock, TTL).date_old_limits()  # a restart does not make it young again
    assert holds.token_limit(MODEL) == LEARNED, "within the ttl counted from the first start"
    clock.advance(120)
    assert holds.token_limit(MODEL) is None and holds.token_limit(MODEL, "azure") is None


def test_the_daemon_dates_old_limits_when_it_starts(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(token_limit_ttl=TTL)
    folders.prepare(harness.settings)
    old = Store(harness.settings.state / folders.DB_NAME)
    old.set_fact(f"token_limit:{MODEL}", str(LEARNED))
    old.close()
    harness.start()
    assert harness.store is not None
    learned = learned_limit_of(harness.store, MODEL)
    assert learned is not None and learned.learned_at is not None, "dated by the start"
    assert learned.limit == LEARNED, "still read"


def test_status_and_metrics_show_each_learned_limit_with_its_age(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    clock = FakeClock(time.time() - TTL - 3600)  # status reads the wall clock: the test ends at it
    holds = Holds(store, clock, TTL)
    holds.note_token_limit(MODEL, OLD_MESSAGE)
    holds.note_token_limit("gpt-4o", OLD_MESSAGE.replace(f"{LEARNED:,}", "2,000,000"), "azure")
    store.set_fact("token_limit:gpt-4.1", "5000")  # an old fact no daemon has dated yet
    now = clock.advance(TTL + 3600)
    holds.note_token_limit(MODEL, OLD_MESSAGE)  # learned again just now
    settings = Settings(root=settings.root, token_limit_ttl=TTL)
    rows = {(r["profile"], r["model"]): r for r in json.loads(status_text(settings, as_json=True))["token_limits"]}
    assert rows[("default", MODEL)]["limit"] == LEARNED and rows[("default", MODEL)]["expired"] is False
    assert rows[("azure", "gpt-4o")]["expired"] is True
    assert rows[("azure", "gpt-4o")]["age_seconds"] == pytest.approx(TTL + 3600, abs=120)
    assert rows[("default", "gpt-4.1")]["learned_at"] is None and rows[("default", "gpt-4.1")]["expired"] is False
    assert "Limit: 100 enqueued tokens" in rows[("default", MODEL)]["message"]
    line = status_text(settings, as_json=False).splitlines()[-1]
    assert line.startswith("learned token limits: ")
    assert "azure/gpt-4o 2,000,000 tokens (learned 7.0d ago, expired: the next batch goes without it)" in line
    gauges = {m.name: {tuple(s.labels.values()): s.value for s in m.samples} for m in limit_gauges(store, now, TTL)}
    assert gauges["batchd_token_limit"][("gpt-4o", "azure")] == 2_000_000
    assert gauges["batchd_token_limit_applied"] == {
        (MODEL, "default"): 1,
        ("gpt-4o", "azure"): 0,
        ("gpt-4.1", "default"): 1,
    }
    assert gauges["batchd_token_limit_age_seconds"][(MODEL, "default")] == 0.0
    assert ("gpt-4.1", "default") not in gauges["batchd_token_limit_age_seconds"], "no age before it is dated"


def test_a_negative_ttl_is_refused_with_what_to_change() -> None:
    with pytest.raises(ConfigError, match="token_limit_ttl must be 0"):
        load_settings(environ={"BATCHD_TOKEN_LIMIT_TTL": "-1"})
    assert load_settings(environ={"BATCHD_TOKEN_LIMIT_TTL": "0"}).token_limit_ttl == 0
