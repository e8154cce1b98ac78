"""Stuck-batch warnings: once per batch and status, from the service's own timestamps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import openai
import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState
from tests.support import TEST_KEY, Harness, request_file, scrape, value, wait_until

RETRIEVE = ("GET", "/v1/batches/{batch_id}")


def stuck_events(captured: list[MutableMapping[str, Any]]) -> list[tuple[str, str]]:
    return [(e["batch_id"], e["status"]) for e in captured if e["event"] == "batch_stuck"]


@pytest.fixture(name="emulator")
def slow_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    # Slow validating and finalizing, so that several polls see each of them.
    timing = EmulatorSettings(
        validating_seconds=1.5,
        in_progress_seconds=0.1,
        finalizing_seconds=1.5,
        cancelling_seconds=1.5,
        data_dir=tmp_path / "emulator",
    )
    with EmulatorServer(timing) as server:
        yield server


def test_slow_validating_and_finalizing_are_each_reported_once(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(
        poll_interval=0.1, stuck_validating_after=0.3, stuck_finalizing_after=0.3, metrics_port=0
    ).start()
    assert harness.engine is not None and harness.engine.metrics is not None
    with capture_logs() as captured:
        harness.drop("slow.jsonl", request_file(3))
        wait_until(lambda: stuck_events(captured), 10, "a batch_stuck warning")
        stuck_now = scrape(harness.engine.metrics.port)
        harness.wait_job("slow.jsonl", timeout=20)
    (batch,) = emulator.batches()
    assert stuck_events(captured) == [(batch["id"], "validating"), (batch["id"], "finalizing")]
    assert value(stuck_now, "batchd_batches_stuck", status="validating") == 1
    assert value(stuck_now, "batchd_batches_stuck", status="finalizing") == 0
    # Each status was seen by several polls, yet reported once.
    assert emulator.calls.count(*RETRIEVE) >= 10
    event = next(e for e in captured if e["event"] == "batch_stuck")
    assert event["seconds"] >= 0.3 and event["limit"] == 0.3 and event["job_id"]


def test_a_slow_cancel_is_reported(harness_factory: Callable[..., Harness], emulator: EmulatorServer) -> None:
    harness = harness_factory(
        poll_interval=0.1, stuck_validating_after=60.0, stuck_finalizing_after=60.0, stuck_cancelling_after=0.3
    ).start()
    with capture_logs() as captured:
        harness.drop("cancel-me.jsonl", request_file(3))
        wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "validating", 10)
        batch_id = emulator.batches()[0]["id"]
        with openai.OpenAI(base_url=emulator.base_url, api_key=TEST_KEY, max_retries=0) as client:
            client.batches.cancel(batch_id)  # cancelled behind batchd's back, e.g. in the dashboard
        harness.wait_job("cancel-me.jsonl", JobState.DONE, JobState.FAILED, timeout=20)
    assert stuck_events(captured) == [(batch_id, "cancelling")]
