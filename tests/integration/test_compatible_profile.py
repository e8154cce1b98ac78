"""A `[providers.default]` of kind openai_compatible, end to end: the daemon against the emulator's
compatible flavour (string bodies, no metadata, no finalizing, an empty error file always, and here
upper-case statuses and ISO timestamps too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service import poller
from daemon.state.rows import Part
from tests.support import FAST, TEST_KEY, Harness, fast_settings, request_file, wait_until

PROFILE = 'kind = "openai_compatible"\nkey_env = "COMPATIBLE_API_KEY"\n'
LOST_CREATE = {"action": "drop", "method": "POST", "path_prefix": "/v1/batches", "after_processing": True}


@pytest.fixture(name="compatible")
def compatible_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(
        **FAST,  # type: ignore[arg-type]
        data_dir=tmp_path / "emulator",
        flavour="compatible",
        upper_statuses=True,
        iso_timestamps=True,
    )
    with EmulatorServer(settings) as server:
        yield server


def profile_harness(tmp_path: Path, server: EmulatorServer, table: str = "", **changes: Any) -> Harness:
    """The daemon with a `[providers.default]` read from a config file; the top-level base_url leads nowhere."""
    config = tmp_path / "batchd.toml"
    config.write_text(f'[providers.default]\n{PROFILE}base_url = "{server.base_url}"\n{table}', encoding="utf-8")
    providers = load_settings(config, environ={}).providers
    root = tmp_path / "root"
    root.mkdir()
    return Harness(fast_settings(root, "http://127.0.0.1:9/unused", providers=providers, **changes), server)


def run_one(harness: Harness, name: str, lines: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    harness.start()
    try:
        harness.drop(name, request_file(lines))
        harness.wait_job(name)
        return harness.results(name), harness.summary(name)
    finally:
        harness.stop()


def body_usage(line: dict[str, Any]) -> int:
    body = line["response"]["body"]
    return int((orjson.loads(body) if isinstance(body, str) else body)["usage"]["total_tokens"])


def test_compatible_service_gets_results_with_usage(tmp_path: Path, compatible: EmulatorServer) -> None:
    results, summary = run_one(profile_harness(tmp_path, compatible), "compat.jsonl", 3)
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1", "r2"]
    assert all(line["response"]["status_code"] == 200 for line in results)
    assert all(isinstance(line["response"]["body"], str) for line in results)  # as the service sent them
    assert summary["outcomes"]["succeeded"] == 3
    usage = summary["usage"]
    assert (usage["lines_with_usage"], usage["lines_succeeded"]) == (3, 3)
    assert usage["total_tokens"] == sum(body_usage(line) for line in results) > 0
    assert sent_batch(compatible)["status"] == "COMPLETED"  # what batchd had to read
    assert isinstance(sent_batch(compatible)["completed_at"], str)


def sent_batch(server: EmulatorServer) -> dict[str, Any]:
    """The (only) batch as the service shows it over HTTP, not as the emulator keeps it."""
    with openai.OpenAI(base_url=server.base_url, api_key=TEST_KEY, max_retries=0) as client:
        raw = client.batches.with_raw_response.retrieve(server.batches()[0]["id"])
        return orjson.loads(raw.text)  # type: ignore[no-any-return]


def test_normalise_bodies_writes_them_as_objects(tmp_path: Path, compatible: EmulatorServer) -> None:
    results, summary = run_one(profile_harness(tmp_path, compatible, normalise_bodies=True), "norm.jsonl", 2)
    assert [type(line["response"]["body"]) for line in results] == [dict, dict]
    assert summary["usage"]["total_tokens"] == sum(body_usage(line) for line in results) > 0


def test_lost_create_reply_without_metadata_is_found_by_its_file(tmp_path: Path, compatible: EmulatorServer) -> None:
    """The service kept no metadata, so the batch is found by the part's own input file: one batch."""
    compatible.faults.add_rule(**LOST_CREATE)
    results, _ = run_one(profile_harness(tmp_path, compatible, "supports_list = true\n"), "lost.jsonl", 4)
    assert compatible.faults.fired == 1  # created, and its answer lost
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1", "r2", "r3"]
    assert len(compatible.batches()) == 1


def test_lost_create_reply_without_list_holds_the_part(tmp_path: Path, compatible: EmulatorServer) -> None:
    """Nothing can show whether the lost create made a batch: none is made again, and the part says why."""
    compatible.faults.add_rule(**LOST_CREATE)
    harness = profile_harness(tmp_path, compatible).start()  # the kind's default: supports_list = false
    try:
        harness.drop("held.jsonl", request_file(2))
        part = wait_until(lambda: held_part(harness), 20.0, "the part to be held with its reason")
    finally:
        harness.stop()
    assert compatible.faults.fired == 1
    assert len(compatible.batches()) == 1
    assert part.state == "batch_intent" and part.batch_id is None
    assert part.file_id is not None and part.file_id in (part.last_error or "")
    assert compatible.calls.count("GET", "/v1/batches") == 0  # never listed


def held_part(harness: Harness) -> Part | None:
    assert harness.store is not None
    job = harness.job("held.jsonl")
    parts = harness.store.parts(job.id) if job else []
    return next((p for p in parts if "cannot list batches" in (p.last_error or "")), None)


def test_capabilities_the_profile_lacks_are_never_sent(tmp_path: Path) -> None:
    """Against plain OpenAI (which would keep both): no metadata, no output_expires_after."""
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        table = "supports_metadata = false\nsupports_expiry = false\n"
        harness = profile_harness(tmp_path, server, table, output_expires_after=3600)
        run_one(harness, "bare.jsonl", 2)
        batch = server.batches()[0]
        output = next(f for f in server.files() if f["id"] == batch["output_file_id"])
    assert batch["metadata"] is None
    assert output["expires_at"] - output["created_at"] > 3600  # the emulator's own default, not ours


@pytest.mark.parametrize("lists", [False, True])
def test_batches_are_listed_only_where_the_profile_allows(
    tmp_path: Path, compatible: EmulatorServer, monkeypatch: pytest.MonkeyPatch, lists: bool
) -> None:
    """The poller lists batches to refresh them when it may (every pass here); never on a service
    without list. The contrast (``lists``) shows the assertion can fail."""
    monkeypatch.setattr(poller, "LIST_WHEN_AT_LEAST", 1)
    harness = profile_harness(tmp_path, compatible, f"supports_list = {str(lists).lower()}\n")
    results, _ = run_one(harness, "polled.jsonl", 2)
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1"]
    assert (compatible.calls.count("GET", "/v1/batches") > 0) is lists


def test_lost_upload_reply_without_list_uploads_again(tmp_path: Path, compatible: EmulatorServer) -> None:
    """Files cannot be searched either: the part is uploaded again (free), and still one batch."""
    compatible.faults.add_rule(action="drop", method="POST", path_prefix="/v1/files", after_processing=True)
    results, _ = run_one(profile_harness(tmp_path, compatible), "upload.jsonl", 2)
    assert compatible.faults.fired == 1
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1"]
    assert compatible.calls.count("GET", "/v1/files") == 0
    assert compatible.calls.count("POST", "/v1/files") == 2
    assert len(compatible.batches()) == 1


def test_a_batch_is_created_with_the_profiles_own_completion_window(tmp_path: Path, compatible: EmulatorServer) -> None:
    """Groq takes 24h to 7d: the profile's `completion_window` is sent, not the top-level 24h."""
    windows = 'completion_windows = ["24h", "7d"]\ncompletion_window = "7d"\n'
    results, _ = run_one(profile_harness(tmp_path, compatible, windows), "week.jsonl", 2)
    assert len(results) == 2
    assert [batch["completion_window"] for batch in compatible.batches()] == ["7d"]
