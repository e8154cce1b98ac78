"""The anthropic flavour through the real `anthropic` SDK: create, retrieve, list, results, delete."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from daemon.emulator import EmulatorServer
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests, results_by_id, wait_ended
from tests.unit.emulator.conftest import ServerFactory


@pytest.fixture
def messages_server(make_server: ServerFactory) -> EmulatorServer:
    return make_server(flavour="anthropic")


@pytest.fixture
def sdk(messages_server: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(messages_server) as client:
        yield client


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
