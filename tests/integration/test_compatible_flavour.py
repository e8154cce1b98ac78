"""The emulator's compatible flavour (llama-stack, Groq, Novita), through the real SDK: one test per difference."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson

from daemon.emulator import EmulatorServer
from tests.integration.flavoured_emulators import (
    chat_lines,
    file_size,
    flavoured_emulator,
    statuses_until_terminal,
    submit_lines,
)
from tests.support import FakeClock
from tests.unit.emulator.helpers import download_lines


def client_for(server: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="compatible-key", max_retries=0)


def test_response_body_is_a_json_string(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible") as server, client_for(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "llama-3"))
        clock.advance(2.0)
        output = download_lines(client, client.batches.retrieve(batch.id).output_file_id)
    assert len(output) == 2
    for line in output:
        assert isinstance(line["response"]["body"], str)
        assert orjson.loads(line["response"]["body"])["usage"]["total_tokens"] > 0


def test_metadata_is_accepted_but_never_stored(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible") as server, client_for(server) as client:
        created = submit_lines(client, tmp_path, chat_lines(1, "llama-3"), metadata={"batchd_part": "p-1"})
        listed = client.batches.list().data
        retrieved = client.batches.retrieve(created.id)
    assert created.metadata is None and retrieved.metadata is None
    assert [batch.metadata for batch in listed] == [None]


def test_in_progress_goes_straight_to_completed(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible") as server, client_for(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "llama-3"))
        seen = statuses_until_terminal(client, clock, batch.id)
        finished = client.batches.retrieve(batch.id)
    assert seen == ["validating", "in_progress", "completed"]
    assert finished.finalizing_at is None


def test_output_files_have_purpose_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible") as server, client_for(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "llama-3"))
        clock.advance(2.0)
        done = client.batches.retrieve(batch.id)
        assert done.output_file_id and done.error_file_id
        purposes = {client.files.retrieve(file_id).purpose for file_id in (done.output_file_id, done.error_file_id)}
    assert purposes == {"batch"}


def test_error_file_is_always_there_and_empty_when_nothing_failed(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible") as server, client_for(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(3, "llama-3"))
        clock.advance(2.0)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.request_counts is not None and done.request_counts.failed == 0
        assert done.error_file_id is not None and file_size(client, done.error_file_id) == 0


def test_upper_case_statuses_when_asked(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "compatible", upper_statuses=True) as server, client_for(server) as c:
        batch = submit_lines(c, tmp_path, chat_lines(1, "llama-3"))
        seen = statuses_until_terminal(c, clock, batch.id)
    assert (batch.status, seen) == ("VALIDATING", ["VALIDATING", "IN_PROGRESS", "COMPLETED"])


def test_iso_timestamps_when_asked(tmp_path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    with flavoured_emulator(tmp_path, clock, "compatible", iso_timestamps=True) as server, client_for(server) as c:
        batch = submit_lines(c, tmp_path, chat_lines(1, "llama-3"))
        clock.advance(2.0)
        raw = orjson.loads(c.batches.with_raw_response.retrieve(batch.id).text)
    assert raw["created_at"] == "2023-11-14T22:13:20Z"
    assert raw["completed_at"] == "2023-11-14T22:13:22Z"
    assert raw["cancelled_at"] is None


def test_plain_openai_flavour_keeps_finalizing_and_object_bodies(tmp_path: Path) -> None:
    """The contrast the tests above rely on: the default flavour is unchanged."""
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "openai") as server, client_for(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(1, "gpt-4o-mini"), metadata={"k": "v"})
        seen = statuses_until_terminal(client, clock, batch.id)
        done = client.batches.retrieve(batch.id)
        output = download_lines(client, done.output_file_id)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]
    assert done.metadata == {"k": "v"} and done.error_file_id is None
    assert isinstance(output[0]["response"]["body"], dict)
