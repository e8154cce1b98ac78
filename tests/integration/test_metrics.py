"""The Prometheus endpoint, scraped over HTTP while the real daemon works against the emulator."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import AccountError, ConfigError, PermanentError
from daemon.ops.metrics import MetricsServer
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.sdk_errors import error_counts
from daemon.state import folders
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.support import TEST_KEY, Harness, Samples, fast_settings, request_file, scrape, value, wait_until


def metrics_port(harness: Harness) -> int:
    assert harness.engine is not None and harness.engine.metrics is not None
    return harness.engine.metrics.port


@pytest.fixture(name="emulator")
def slow_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    # Long enough in progress for a scrape to see a batch running; short enough for a test.
    timing = EmulatorSettings(
        validating_seconds=0.05, in_progress_seconds=1.0, finalizing_seconds=0.05, data_dir=tmp_path / "emulator"
    )
    with EmulatorServer(timing) as server:
        yield server


def test_metrics_are_off_unless_configured(harness: Harness) -> None:
    assert harness.engine is not None
    assert harness.engine.metrics is None and harness.engine.endpoints == []


def test_scrape_follows_a_file_through_the_daemon(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(metrics_port=0).start()
    port = metrics_port(harness)
    before = scrape(port)
    assert value(before, "batchd_files_claimed_total") == 0
    assert value(before, "batchd_jobs", state="done") == 0
    assert value(before, "batchd_oldest_active_batch_age_seconds") == 0
    assert value(before, "batchd_seconds_since_last_successful_poll") is None  # nothing polled yet
    transient_before = error_counts().get("transient", 0)
    # One lost upload answer: retried at once, and counted as a transient API error.
    emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=500)

    harness.drop("good.jsonl", request_file(7))

    def running() -> Samples | None:
        samples = scrape(port)
        return samples if value(samples, "batchd_batches", status="in_progress") == 1 else None

    during = wait_until(running, 10, "a scrape showing the batch in progress")
    assert (value(during, "batchd_enqueued_tokens", model="gpt-4o-mini") or 0) > 0
    assert (value(during, "batchd_oldest_active_batch_age_seconds") or 0) > 0
    assert value(during, "batchd_jobs", state="active") == 1
    assert value(during, "batchd_parts", state="submitted") == 1
    assert (value(during, "batchd_api_errors_total", **{"class": "transient"}) or 0) >= transient_before + 1

    harness.wait_job("good.jsonl")
    after = scrape(port)
    assert value(after, "batchd_files_claimed_total") == 1
    assert value(after, "batchd_files_rejected_total") == 0
    assert value(after, "batchd_jobs", state="done") == 1
    assert value(after, "batchd_jobs", state="active") == 0
    assert value(after, "batchd_batches", status="completed") == 1
    assert value(after, "batchd_batches", status="in_progress") == 0
    assert value(after, "batchd_requests_total", outcome="succeeded") == 7
    assert value(after, "batchd_requests_total", outcome="failed") == 0
    assert value(after, "batchd_enqueued_tokens", model="gpt-4o-mini") is None  # nothing enqueued any more
    assert value(after, "batchd_oldest_active_batch_age_seconds") == 0
    assert 0 <= (value(after, "batchd_seconds_since_last_successful_poll") or -1) < 5
    assert value(after, "batchd_account_blocked") == 0

    harness.drop("bad.jsonl", "this is not json\n")
    harness.wait_job("bad.jsonl", JobState.REJECTED)
    final = scrape(port)
    assert value(final, "batchd_files_claimed_total") == 2
    assert value(final, "batchd_files_rejected_total") == 1
    assert value(final, "batchd_jobs", state="rejected") == 1


def test_values_survive_a_restart(harness_factory: Callable[..., Harness]) -> None:
    first = harness_factory(metrics_port=0).start()
    first.drop("one.jsonl", request_file(3))
    first.wait_job("one.jsonl")
    first.stop()
    second = harness_factory(metrics_port=0).start()
    samples = scrape(metrics_port(second))
    assert value(samples, "batchd_files_claimed_total") == 1
    assert value(samples, "batchd_requests_total", outcome="succeeded") == 3
    assert value(samples, "batchd_seconds_since_last_successful_poll") is not None  # recorded in the state


def test_account_and_permanent_api_errors_are_counted(tmp_path: Path, emulator: EmulatorServer) -> None:
    settings = fast_settings(tmp_path, emulator.base_url, metrics_port=0)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    server = MetricsServer(settings, store)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 5.0)
    server.start()
    try:
        before = scrape(server.port)
        with pytest.raises(PermanentError):
            remote.retrieve("batch_does_not_exist")  # 404
        emulator.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=401)
        with pytest.raises(AccountError):
            remote.retrieve("batch_whatever")
        after = scrape(server.port)
    finally:
        server.stop()
        remote.close()
        store.close()
    for kind in ("permanent", "account"):
        label = {"class": kind}
        assert (
            value(after, "batchd_api_errors_total", **label)
            == (value(before, "batchd_api_errors_total", **label) or 0) + 1
        )


def test_a_taken_port_is_a_clear_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = fast_settings(tmp_path, "http://127.0.0.1:9", metrics_port=port)
        folders.prepare(settings)
        store = Store(settings.state / folders.DB_NAME)
        try:
            with pytest.raises(ConfigError, match=f"metrics_port {port}"):
                MetricsServer(settings, store).start()
        finally:
            store.close()
