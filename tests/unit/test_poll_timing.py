"""The poller's and the holds' timing rules on a clock the test moves by hand: the poll wait that
doubles up to ``poll_interval``, the wait after a garbled reply, the back-off after a failed pass, the
stuck threshold, and when account and model holds end. The emulator runs on the same clock, so a batch
ends when the test says so, and no test waits for real time."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.params import BatchParams, UploadParams
from daemon.providers import openai_default_profile
from daemon.service.credentials import KeySource
from daemon.service.holds import ACCOUNT_RETRY, MODEL_HOLD_FACT, TOKEN_LIMIT_RETRY, Holds
from daemon.service.openai_service import OpenAIService
from daemon.service.poller import ERROR_BACKOFF, Poller, backoff_after
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import TEST_KEY, FakeClock, clocked_service

ENDPOINT = "/v1/chat/completions"
RUNNING = 1000.0  # fake seconds a batch stays in_progress: far longer than any poll wait below


@dataclass
class Polled:
    poller: Poller
    store: Store
    part: Part
    clock: FakeClock
    emulator: EmulatorServer
    finished: threading.Event


@pytest.fixture(name="polled")
def polled_fixture(tmp_path: Path) -> Iterator[Polled]:
    """A poller and an emulator on one fake clock, with one submitted part whose batch is running."""
    with clocked_service(tmp_path, RUNNING) as on:
        clock, emulator, settings, store, remote = on.clock, on.emulator, on.settings, on.store, on.remote
        store.add_job(Job("j1", "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, clock.now(), clock.now()))
        batch_id = _running_batch(emulator)
        part = Part("j1", 0, 0, "p", 1, 1, 10, 3, PartState.SUBMITTED, clock.now(), clock.now(), batch_id=batch_id)
        part = store.add_part(part)
        finished = threading.Event()
        poller = Poller(settings, store, remote, Holds(store, clock), threading.Event(), finished.set, clock=clock)
        yield Polled(poller, store, part, clock, emulator, finished)


def _running_batch(emulator: EmulatorServer) -> str:
    """A batch straight in the emulator's store (no API call), as a submission leaves it."""
    staged = emulator.store.staging_path()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    staged.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": ENDPOINT, "body": body}) + "\n")
    upload = emulator.store.add_upload(staged, "in.jsonl", UploadParams("batch", None))
    return str(emulator.store.create_batch(BatchParams(upload["id"], ENDPOINT, "24h", None, None))["id"])


def _retrieves(emulator: EmulatorServer) -> int:
    return emulator.calls.count("GET", "/v1/batches/{batch_id}")


def test_the_poll_wait_doubles_up_to_the_poll_interval_and_nothing_is_asked_before_it_is_due(
    polled: Polled,
) -> None:
    waits = []
    for _ in range(5):
        now = polled.clock.now()
        assert polled.poller.poll_once(now) == 1
        waits.append(polled.store.part(polled.part.id).next_action_at - now)
        asked = _retrieves(polled.emulator)
        assert polled.poller.poll_once(polled.clock.advance(waits[-1] - 0.001)) == 0, "not due yet"
        assert _retrieves(polled.emulator) == asked, "a batch that is not due is not asked about"
        polled.clock.advance(0.001)
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0]
    assert polled.store.part(polled.part.id).batch_status == "in_progress"
    assert not polled.finished.is_set()


def test_a_batch_that_ends_is_recorded_at_the_first_poll_after_its_end(polled: Polled) -> None:
    assert polled.poller.poll_once(polled.clock.now()) == 1
    polled.clock.advance(RUNNING + 1)
    assert polled.poller.poll_once(polled.clock.now()) == 1
    part = polled.store.part(polled.part.id)
    assert (part.state, part.batch_status) == (PartState.FINISHED, "completed")
    assert polled.finished.is_set()


def test_a_garbled_reply_defers_the_batch_by_the_growing_poll_wait(polled: Polled) -> None:
    polled.emulator.faults.add_rule(action="reply", method="GET", path_prefix="/v1/batches/", body='{"id": 5}', count=2)
    start = polled.clock.now()
    assert polled.poller.poll_once(start) == 1
    assert polled.store.part(polled.part.id).next_action_at == start + 2.0
    assert polled.poller.poll_once(polled.clock.advance(2.0)) == 1
    assert polled.store.part(polled.part.id).next_action_at == start + 2.0 + 4.0
    assert polled.store.part(polled.part.id).batch_status is None, "a garbled reply is not a status"


def test_failed_passes_back_off_from_one_second_doubling_to_a_minute() -> None:
    waits = [backoff_after(failures) for failures in range(1, 10)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, ERROR_BACKOFF, ERROR_BACKOFF, ERROR_BACKOFF]


def test_an_account_hold_ends_on_the_clock_and_a_good_poll_lifts_it(polled: Polled) -> None:
    holds = polled.poller.holds
    holds.block_account("HTTP 401: bad key")
    assert holds.account_wait(polled.clock.now()) == ACCOUNT_RETRY
    assert holds.account_wait(polled.clock.advance(ACCOUNT_RETRY - 1)) == 1.0
    assert holds.account_wait(polled.clock.advance(1)) == 0.0
    assert holds.account_reason == "HTTP 401: bad key", "the reason stays until a call succeeds"
    assert polled.poller.poll_once(polled.clock.now()) == 1
    assert holds.account_reason == ""


def test_a_full_model_queue_holds_that_model_for_the_retry_time(polled: Polled) -> None:
    holds = polled.poller.holds
    holds.hold_model("gpt-4o-mini", 90_000)
    start = polled.clock.now()
    assert polled.store.fact(f"{MODEL_HOLD_FACT}gpt-4o-mini") == repr(start + TOKEN_LIMIT_RETRY), "shown by status"
    assert holds.model_wait("gpt-4o-mini", 10, 0, start) == TOKEN_LIMIT_RETRY
    assert holds.model_wait("gpt-4o", 10, 0, start) == 0.0, "other models go on"
    assert holds.model_wait("gpt-4o-mini", 10, 0, polled.clock.advance(TOKEN_LIMIT_RETRY)) == 0.0


def test_a_batch_stuck_in_validating_is_reported_once_when_it_passes_the_threshold(tmp_path: Path) -> None:
    """poll_once(now) on the fake clock: quiet up to ``stuck_validating_after`` seconds, then one warning."""
    clock, limit = FakeClock(), 100.0
    timing = EmulatorSettings(validating_seconds=RUNNING, data_dir=tmp_path / "emulator")
    with EmulatorServer(timing, clock=clock) as emulator:
        settings = Settings(
            root=tmp_path,
            base_url=emulator.base_url,
            first_poll_after=1.0,
            poll_interval=8.0,
            stuck_validating_after=limit,
        )
        (tmp_path / "state").mkdir()
        store = Store(tmp_path / "state" / folders.DB_NAME)
        remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
        store.add_job(Job("j1", "in.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, clock.now(), clock.now()))
        created = clock.now()
        batch_id = _running_batch(emulator)
        store.add_part(Part("j1", 0, 0, "p", 1, 1, 10, 3, PartState.SUBMITTED, created, created, batch_id=batch_id))
        poller = Poller(settings, store, remote, Holds(store, clock), threading.Event(), lambda: None, clock=clock)
        warned_at: list[float] = []
        with capture_logs() as captured:
            for _ in range(40):  # 40 polls, 8 s apart at most: well past the threshold
                poller.poll_once(clock.now())
                if any(e["event"] == "batch_stuck" for e in captured) and not warned_at:
                    warned_at.append(clock.now())
                due = store.next_due(PartState.SUBMITTED)
                assert due is not None
                clock.advance(due - clock.now())
        remote.close()
        store.close()
    assert [e["status"] for e in captured if e["event"] == "batch_stuck"] == ["validating"]
    assert len(warned_at) == 1 and limit < warned_at[0] - created <= limit + settings.poll_interval


def test_a_profiles_min_poll_interval_spaces_the_polls_of_its_batches(polled: Polled) -> None:
    """Azure asks for a minute between polls: the wait never drops below the profile's floor."""
    profile = dataclasses.replace(openai_default_profile(polled.emulator.base_url), min_poll_interval=5.0)
    remote = OpenAIService.for_profile(profile, KeySource("test key", value=TEST_KEY), 10.0)
    poller = Poller(
        polled.poller.settings,
        polled.store,
        remote,
        polled.poller.holds,
        threading.Event(),
        lambda: None,
        clock=polled.clock,
    )
    waits = []
    try:
        for _ in range(4):
            now = polled.clock.now()
            assert poller.poll_once(now) == 1
            waits.append(polled.store.part(polled.part.id).next_action_at - now)
            polled.clock.advance(waits[-1])
    finally:
        remote.close()
    assert waits == [5.0, 8.0, 8.0, 8.0]  # without the floor: 2, 4, 8, 8


def test_a_garbled_reply_waits_at_least_the_profiles_min_poll_interval(polled: Polled) -> None:
    polled.emulator.faults.add_rule(action="reply", method="GET", path_prefix="/v1/batches/", body='{"id": 5}', count=1)
    profile = dataclasses.replace(openai_default_profile(polled.emulator.base_url), min_poll_interval=5.0)
    remote = OpenAIService.for_profile(profile, KeySource("test key", value=TEST_KEY), 10.0)
    poller = Poller(
        polled.poller.settings, polled.store, remote, polled.poller.holds, threading.Event(), lambda: None, polled.clock
    )
    start = polled.clock.now()
    try:
        assert poller.poll_once(start) == 1
    finally:
        remote.close()
    assert polled.store.part(polled.part.id).next_action_at == start + 5.0  # without the floor: 2 s


def test_a_webhooks_check_now_comes_no_sooner_than_the_profiles_min_poll_interval(polled: Polled) -> None:
    """A webhook asks for a batch at once; on a profile with a floor between checks (Azure: a
    minute), the check is brought forward to the earliest moment the floor allows, not made now."""
    profile = dataclasses.replace(openai_default_profile(polled.emulator.base_url), min_poll_interval=5.0)
    remote = OpenAIService.for_profile(profile, KeySource("test key", value=TEST_KEY), 10.0)
    poller = Poller(
        polled.poller.settings, polled.store, remote, polled.poller.holds, threading.Event(), lambda: None, polled.clock
    )
    batch_id = polled.part.batch_id or ""
    try:
        first = polled.clock.now()
        poller.poll_once(first)  # checked now; the next one 5 s later
        polled.clock.advance(5.0)
        second = polled.clock.now()
        poller.poll_once(second)  # the wait has grown to the poll_interval: 8 s
        assert polled.store.part(polled.part.id).next_action_at == second + 8.0
        polled.clock.advance(1.0)
        before = _retrieves(polled.emulator)
        assert poller.refresh_now(batch_id) == "queued"
        assert poller.poll_once(polled.clock.now()) == 0 and _retrieves(polled.emulator) == before  # not yet
        assert polled.store.part(polled.part.id).next_action_at == second + 5.0  # brought forward to the floor
        polled.clock.advance(4.0)
        assert poller.poll_once(polled.clock.now()) == 1 and _retrieves(polled.emulator) == before + 1
        polled.clock.advance(5.0)  # past the floor since the last check: a webhook is acted on at once
        assert poller.refresh_now(batch_id) == "queued"
        assert poller.poll_once(polled.clock.now()) == 1 and _retrieves(polled.emulator) == before + 2
    finally:
        remote.close()
