"""The anthropic flavour through the real `anthropic` SDK: create, retrieve, list, results, delete."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import anthropic
import pytest

from daemon.emulator import EmulatorServer
from daemon.emulator.cli import add_emulator_arguments, run_emulator_command
from tests.support import wait_until
from tests.unit.emulator.anthropic_helpers import message_requests, results_by_id, wait_ended


def test_a_created_batch_is_in_progress_with_every_request_processing(sdk: anthropic.Anthropic) -> None:
    batch = sdk.messages.batches.create(requests=message_requests(3))

    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled, counts.expired) == (3, 0, 0, 0, 0)
    assert batch.results_url is None
    assert batch.ended_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == pytest.approx(86_400)


def test_an_ended_batch_counts_its_requests_and_streams_one_message_per_request(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=message_requests(5))

    batch = wait_ended(sdk, created.id)

    assert batch.request_counts.succeeded == 5
    assert batch.request_counts.processing == 0
    assert batch.ended_at is not None and batch.ended_at >= batch.created_at
    assert batch.results_url is not None and batch.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    results = results_by_id(sdk, batch.id)
    assert sorted(results) == [f"req-{index}" for index in range(5)]
    for custom_id, line in results.items():
        assert line.result.type == "succeeded"
        message = line.result.message
        assert message.role == "assistant" and message.model == "claude-test"
        assert message.content[0].type == "text"
        assert f"question {custom_id.split('-')[1]}" in message.content[0].text
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_retrieve_and_list_show_the_same_batch(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=message_requests(2))

    assert sdk.messages.batches.retrieve(created.id).id == created.id
    assert [batch.id for batch in sdk.messages.batches.list()] == [created.id]


def test_an_ended_batch_can_be_deleted_and_is_gone_after(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=message_requests(2))
    wait_ended(sdk, created.id)

    deleted = sdk.messages.batches.delete(created.id)

    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(created.id)
    assert list(sdk.messages.batches.list()) == []


def test_server_batches_lists_message_batches_as_the_api_shows_them(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    first = sdk.messages.batches.create(requests=message_requests(1))
    second = sdk.messages.batches.create(requests=message_requests(2))

    snapshot = messages_server.batches()

    assert [batch["id"] for batch in snapshot] == [first.id, second.id]  # oldest first
    assert snapshot[1]["request_counts"]["processing"] + snapshot[1]["request_counts"]["succeeded"] == 2
    assert messages_server.calls.count("POST", "/v1/messages/batches") == 2


def test_batchd_emulator_serves_the_anthropic_flavour(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    args = parser.parse_args(["--port", "0", "--data-dir", str(tmp_path), "--flavour", "anthropic"])
    args.in_progress_seconds = 0.0
    stop = threading.Event()
    runner = threading.Thread(target=run_emulator_command, args=(args, stop))
    runner.start()
    output: list[str] = []

    def base_url() -> str | None:
        output.append(capsys.readouterr().out)
        text = "".join(output)
        if "emulator listening on " not in text:
            return None
        return text.split("emulator listening on ", 1)[1].split("\n", 1)[0].strip()

    try:
        url = wait_until(base_url, 5.0, "the listening line", every=0.01)
        with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client:
            created = client.messages.batches.create(requests=message_requests(2))
            assert [line.custom_id for line in client.messages.batches.results(created.id)] != []
    finally:
        stop.set()
        runner.join(5)
    assert not url.endswith("/v1")
