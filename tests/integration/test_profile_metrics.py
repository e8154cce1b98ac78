"""Metrics by provider profile: jobs, parts, batches, requests, API errors, enqueued tokens, stuck
batches and account holds each carry a `profile` label (names as before), so one service's trouble
shows as that service's. Two emulators on loopback, OpenAI's shape and Azure's."""

from __future__ import annotations

from pathlib import Path

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import Harness, azure_profile, fast_settings, request_file, scrape, value

DEPLOYMENT = "gpt-4o-mini-batch"


def test_each_profiles_work_and_errors_are_labelled_with_it(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    config = root / "batchd.toml"
    default = f'[providers.default]\nbase_url = "{openai_server.base_url}"\n\n'
    config.write_text(default + azure_profile(azure_server.base_url), encoding="utf-8")
    providers = load_settings(config, environ={}).providers
    harness = Harness(fast_settings(root, openai_server.base_url, providers=providers, metrics_port=0), openai_server)
    # One failed upload on the azure service only (a 500: retried, then it goes through).
    azure_server.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=500, count=1)
    harness.start()
    try:
        assert harness.engine is not None and harness.engine.metrics is not None
        port = harness.engine.metrics.port
        before = scrape(port)
        harness.drop("top.jsonl", request_file(3))
        harness.drop("az.jsonl", request_file(2, model=DEPLOYMENT), "azure")
        harness.profile_job("default", JobState.DONE)
        harness.profile_job("azure", JobState.DONE)
        after = scrape(port)
    finally:
        harness.stop()
    for profile in ("default", "azure"):  # every configured profile's series exist from the start
        assert value(before, "batchd_jobs", state="done", profile=profile) == 0
        assert value(before, "batchd_account_blocked", profile=profile) == 0
        assert value(after, "batchd_jobs", state="done", profile=profile) == 1
        assert value(after, "batchd_files_claimed_total", profile=profile) == 1
        assert value(after, "batchd_batches", status="completed", profile=profile) == 1
        assert value(after, "batchd_batches_stuck", status="validating", profile=profile) == 0
    assert value(after, "batchd_requests_total", outcome="succeeded", profile="default") == 3
    assert value(after, "batchd_requests_total", outcome="succeeded", profile="azure") == 2
    assert value(after, "batchd_parts", state="downloaded", profile="azure") == 1

    def errors(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], profile: str) -> float:
        return value(samples, "batchd_api_errors_total", **{"class": "transient", "profile": profile}) or 0.0

    assert errors(after, "azure") == errors(before, "azure") + 1
    assert errors(after, "default") == errors(before, "default")
