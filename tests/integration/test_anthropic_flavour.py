"""The `anthropic_server` fixture (Anthropic's Message Batches, as an anthropic profile would use it) at
its real pace: batches end, the `expire` trigger ends in `expired` within the fixture's 2 s window, and a
lost create reply leaves exactly one batch behind. Details: tests/unit/emulator/test_anthropic_*.py."""

from __future__ import annotations

import anthropic
import pytest

from daemon.emulator import EmulatorServer
from tests.anthropic_spec import problems
from tests.unit.emulator.anthropic_helpers import (
    anthropic_client,
    executed_requests,
    message_requests,
    results_by_id,
    sent_requests,
    wait_ended,
)


def test_a_batch_ends_and_its_results_match_what_was_sent(anthropic_server: EmulatorServer) -> None:
    with anthropic_client(anthropic_server) as sdk:
        created = sdk.messages.batches.create(requests=message_requests(5))
        batch = wait_ended(sdk, created.id)
        results = results_by_id(sdk, created.id)

    assert batch.request_counts.succeeded == 5
    assert sorted(results) == sorted(request["custom_id"] for request in sent_requests(anthropic_server))
    assert problems("CreateMessageBatchParams", {"requests": sent_requests(anthropic_server)}) == []


def test_the_expire_trigger_ends_in_expired_within_the_fixture_window(anthropic_server: EmulatorServer) -> None:
    with anthropic_client(anthropic_server) as sdk:
        created = sdk.messages.batches.create(requests=message_requests(4, model="claude-expire"))
        batch = wait_ended(sdk, created.id, timeout=10.0)

    assert (batch.request_counts.succeeded, batch.request_counts.expired) == (2, 2)
    assert batch.ended_at == batch.expires_at


def test_a_lost_create_reply_leaves_one_batch(anthropic_server: EmulatorServer) -> None:
    anthropic_server.faults.add_rule(
        action="drop", method="POST", path_prefix="/messages/batches", after_processing=True
    )
    with anthropic_client(anthropic_server) as sdk:
        with pytest.raises(anthropic.APIConnectionError):
            sdk.messages.batches.create(requests=message_requests(3))
        listed = list(sdk.messages.batches.list())
        wait_ended(sdk, listed[0].id)

    assert len(listed) == 1
    assert len(sent_requests(anthropic_server)) == 3
    assert executed_requests(anthropic_server) == {"req-0": 1, "req-1": 1, "req-2": 1}
