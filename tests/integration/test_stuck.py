"""Stuck-batch warnings: once per batch and status, from the service's own timestamps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import Batch
from structlog.testing import capture_logs

from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import ConfigError
from daemon.service.stuck_watch import StuckWatch
from daemon.state.states import JobState, PartState
from daemon.state.store import Part
from tests.integration.test_metrics import scrape, value
from tests.support import TEST_KEY, Harness, request_file, wait_until

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


def _batch(status: str, **times: int | None) -> Batch:
    return Batch.model_validate(
        {
            "id": "batch_1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-1",
            "completion_window": "24h",
            "created_at": 1000,
            "status": status,
            **times,
        }
    )


def _part() -> Part:
    return Part("job-1", 0, 0, "p", 1, 1, 1, 1, PartState.SUBMITTED, 0.0, 0.0, batch_id="batch_1")


def test_the_watch_uses_service_timestamps_and_first_sight_otherwise(tmp_path: Path) -> None:
    watch = StuckWatch(Settings(root=tmp_path, stuck_validating_after=100.0, stuck_finalizing_after=100.0))
    with capture_logs() as captured:
        watch.check(_part(), _batch("validating"), now=1050.0)  # 50 s since created_at: fine
        watch.check(_part(), _batch("validating"), now=1101.0)  # 101 s: stuck
        watch.check(_part(), _batch("validating"), now=1200.0)  # still stuck: already reported
        watch.check(_part(), _batch("in_progress", in_progress_at=1201), now=1300.0)
        # A service without finalizing_at: counted from when batchd first saw the status.
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2000.0)
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2099.0)
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2101.0)
        watch.check(_part(), _batch("completed", completed_at=2102), now=2102.0)
    assert [(e["status"], e["seconds"]) for e in captured if e["event"] == "batch_stuck"] == [
        ("validating", 101),
        ("finalizing", 101),
    ]
    assert watch._seen == {}  # a finished batch is forgotten


@pytest.mark.parametrize("key", ["stuck_validating_after", "stuck_finalizing_after", "stuck_cancelling_after"])
def test_thresholds_must_be_positive(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(environ={f"BATCHD_{key.upper()}": "0"})
    assert getattr(load_settings(environ={f"BATCHD_{key.upper()}": "90"}), key) == 90.0
    assert getattr(load_settings(environ={}), key) == 3600.0
