"""Batches the service forgets (404, not listed) and batches it never ends (until cancelled)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from daemon.emulator import EmulatorServer
from tests.support import FakeClock
from tests.unit.emulator.helpers import download_lines, request_lines, submit


def test_a_vanished_batch_is_404_and_unlisted_until_restored(
    manual_client: openai.OpenAI, manual_server: EmulatorServer, tmp_path: Path
) -> None:
    kept = submit(manual_client, tmp_path, request_lines(2))
    gone = submit(manual_client, tmp_path, request_lines(2))
    manual_server.mishaps.vanish(gone.id)
    with pytest.raises(openai.NotFoundError):
        manual_client.batches.retrieve(gone.id)
    with pytest.raises(openai.NotFoundError):
        manual_client.batches.cancel(gone.id)
    assert [b.id for b in manual_client.batches.list()] == [kept.id]
    manual_server.mishaps.restore(gone.id)
    assert manual_client.batches.retrieve(gone.id).id == gone.id
    assert {b.id for b in manual_client.batches.list()} == {kept.id, gone.id}


def test_the_next_batches_vanish_over_http(
    manual_client: openai.OpenAI, manual_server: EmulatorServer, tmp_path: Path
) -> None:
    reply = httpx2.post(f"{manual_server.url}/_emulator/batches", json={"vanish_next": 1})
    assert reply.status_code == 200 and reply.json()["vanish_next"] == 1
    gone = submit(manual_client, tmp_path, request_lines(2))  # the create itself is answered
    kept = submit(manual_client, tmp_path, request_lines(2))
    with pytest.raises(openai.NotFoundError):
        manual_client.batches.retrieve(gone.id)
    assert manual_client.batches.retrieve(kept.id).status == "validating"
    snapshot = httpx2.get(f"{manual_server.url}/_emulator/batches").json()
    assert snapshot == {"vanished": [gone.id], "endless": [], "vanish_next": 0, "never_end_next": 0}
    bad = httpx2.post(f"{manual_server.url}/_emulator/batches", json={"vanish": "not-a-list"})
    assert bad.status_code == 400 and "list of batch ids" in bad.text


def test_an_endless_batch_stalls_half_way_until_cancelled(
    manual_client: openai.OpenAI, manual_server: EmulatorServer, clock: FakeClock, tmp_path: Path
) -> None:
    manual_server.mishaps.never_end_next(1)
    batch = submit(manual_client, tmp_path, request_lines(6))
    clock.advance(30 * 86_400.0)  # far past the 24 h window and any expiry
    running = manual_client.batches.retrieve(batch.id)
    assert running.status == "in_progress"
    assert running.request_counts is not None and running.request_counts.completed == 3
    manual_client.batches.cancel(batch.id)
    clock.advance(1.0)
    ended = manual_client.batches.retrieve(batch.id)
    assert ended.status == "cancelled"
    assert len(download_lines(manual_client, ended.output_file_id)) == 3
    assert len(download_lines(manual_client, ended.error_file_id)) == 3  # the three it never ran


def test_a_batch_after_the_endless_one_ends_normally(
    manual_client: openai.OpenAI, manual_server: EmulatorServer, clock: FakeClock, tmp_path: Path
) -> None:
    reply = httpx2.post(f"{manual_server.url}/_emulator/batches", json={"never_end_next": 1})
    assert reply.status_code == 200
    endless = submit(manual_client, tmp_path, request_lines(2))
    normal = submit(manual_client, tmp_path, request_lines(2))
    clock.advance(10.0)
    assert manual_client.batches.retrieve(endless.id).status == "in_progress"
    assert manual_client.batches.retrieve(normal.id).status == "completed"
