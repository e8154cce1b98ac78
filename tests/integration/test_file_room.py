"""A profile's max_files: a service that keeps only so many input files (an Azure resource keeps 500).

The azure emulator refuses an upload past its `file_limit` with a 400, as the service does; batchd
must never send one: an upload waits, held with a reason, until the remote cleanup of finished jobs
has deleted files and made room. Files of other tools, which batchd cannot count, may still fill
the service: an upload it refuses waits for room the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState, PartState
from tests.support import FAST, TEST_KEY, Harness, azure_profile, fast_settings, request_file, wait_until

DEPLOYMENT = "gpt-4o-mini-batch"
ROOM = 2  # input files the emulated resource keeps, and the profile's max_files


@pytest.fixture(name="small_azure")
def small_azure_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "azure", flavour="azure", file_limit=ROOM)  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def _harness(root: Path, server: EmulatorServer, *, delete: bool, max_files: int = ROOM) -> Harness:
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(azure_profile(server.base_url, f"max_files = {max_files}\n"), encoding="utf-8")
    providers = load_settings(config, environ={}).providers
    settings = fast_settings(
        root, "http://127.0.0.1:9/unused", providers=providers, delete_remote_files=delete, pack_inputs_up_to=0
    )
    return Harness(settings, server)


def _refused_uploads(server: EmulatorServer) -> int:
    return sum(1 for call in server.calls.entries() if call.route == "/v1/files" and call.status == 400)


def test_uploads_wait_for_room_and_go_once_finished_jobs_files_are_deleted(
    tmp_path: Path, small_azure: EmulatorServer
) -> None:
    harness = _harness(tmp_path / "root", small_azure, delete=True).start()
    try:
        names = [f"in{i}.jsonl" for i in range(ROOM * 2 + 1)]
        for name in names:
            harness.drop(name, request_file(2, prefix=name[:3], model=DEPLOYMENT), "azure")
        for name in names:
            harness.wait_job(name, JobState.DONE, timeout=60)
        codes = [line["response"]["status_code"] for name in names for line in harness.results(name)]
    finally:
        harness.stop()
    assert _refused_uploads(small_azure) == 0  # never one upload past the service's limit
    assert small_azure.calls.count("POST", "/v1/files") == len(names)
    assert codes == [200] * 2 * len(names)


def test_uploads_the_service_refuses_for_files_of_other_tools_wait_and_none_fails(
    tmp_path: Path, small_azure: EmulatorServer
) -> None:
    client = openai.OpenAI(api_key=TEST_KEY, base_url=small_azure.base_url, max_retries=0)
    with client:  # another tool's file: batchd's own count (max_files 500) cannot see it
        client.files.create(file=("other.jsonl", request_file(1).encode(), "application/jsonl"), purpose="batch")
    harness = _harness(tmp_path / "root", small_azure, delete=True, max_files=500).start()
    try:
        names = [f"in{i}.jsonl" for i in range(ROOM + 1)]
        for name in names:
            harness.drop(name, request_file(2, prefix=name[:3], model=DEPLOYMENT), "azure")
        for name in names:
            harness.wait_job(name, JobState.DONE, timeout=60)
        failed = list((tmp_path / "root" / "failed").rglob("*.jsonl"))
    finally:
        harness.stop()
    assert _refused_uploads(small_azure) >= 1  # the service did refuse: room was waited for, not failed
    assert failed == []


def test_without_deletion_the_upload_is_held_with_a_reason_not_failed(
    tmp_path: Path, small_azure: EmulatorServer
) -> None:
    harness = _harness(tmp_path / "root", small_azure, delete=False).start()
    try:
        names = [f"in{i}.jsonl" for i in range(ROOM + 1)]
        for name in names:
            harness.drop(name, request_file(2, prefix=name[:3], model=DEPLOYMENT), "azure")
        assert harness.store is not None
        store = harness.store

        def held() -> str | None:
            errors = [p.last_error or "" for p in store.parts_in((PartState.READY,))]
            return next((e for e in errors if "max_files" in e), None)

        reason = wait_until(held, 30, "an upload held for room")

        def finished() -> int:
            return sum(1 for job in store.jobs() if job.state == JobState.DONE)

        wait_until(lambda: finished() >= ROOM, 30, f"{ROOM} jobs done")
        done = finished()
        waiting = [job for job in store.jobs() if job.state != JobState.DONE]
    finally:
        harness.stop()
    assert f"keeps at most {ROOM} input files" in reason and "delete_remote_files" in reason
    assert done == ROOM and len(waiting) == 1  # two done; the third waits, its input kept, nothing failed
    assert waiting[0].state == JobState.ACTIVE
    assert _refused_uploads(small_azure) == 0
    assert small_azure.calls.count("POST", "/v1/files") == ROOM
