"""The anthropic flavour's lifecycle on a hand-moved clock: processing, cancel, expiry, list paging."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from daemon.emulator import EmulatorServer
from tests.support import FakeClock
from tests.unit.emulator.anthropic_helpers import anthropic_client, executed_requests, message_requests, results_by_id
from tests.unit.emulator.conftest import ServerFactory

# Requests finish evenly over 10 s of fake time; a cancel takes 1 s; batches expire after 100 s.
TIMING = {"in_progress_seconds": 10.0, "cancelling_seconds": 1.0, "expiry_seconds": 100.0}


@pytest.fixture
def server(make_server: ServerFactory, clock: FakeClock) -> EmulatorServer:
    return make_server(clock=clock, flavour="anthropic", **TIMING)


@pytest.fixture
def sdk(server: EmulatorServer) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(server) as client:
        yield client


def counts(batch: Any) -> dict[str, int]:
    return dict(batch.request_counts)


def test_counts_stay_processing_until_the_whole_batch_ends(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    created = sdk.messages.batches.create(requests=message_requests(4))

    clock.advance(9.9)
    running = sdk.messages.batches.retrieve(created.id)
    clock.advance(0.1)
    ended = sdk.messages.batches.retrieve(created.id)

    assert running.processing_status == "in_progress"
    assert counts(running) == {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert ended.processing_status == "ended"
    assert counts(ended) == {"processing": 0, "succeeded": 4, "errored": 0, "canceled": 0, "expired": 0}
    assert ended.ended_at is not None and (ended.ended_at - ended.created_at).total_seconds() == pytest.approx(10)


def test_a_cancel_ends_the_batch_with_the_unrun_requests_canceled(
    sdk: anthropic.Anthropic, server: EmulatorServer, clock: FakeClock
) -> None:
    created = sdk.messages.batches.create(requests=message_requests(10))
    clock.advance(3.0)  # 3 of 10 requests have run

    canceling = sdk.messages.batches.cancel(created.id)
    again = sdk.messages.batches.cancel(created.id)
    clock.advance(1.0)
    ended = sdk.messages.batches.retrieve(created.id)

    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert (canceling.cancel_initiated_at - canceling.created_at).total_seconds() == pytest.approx(3)
    assert counts(canceling)["processing"] == 10
    assert again.processing_status == "canceling" and again.cancel_initiated_at == canceling.cancel_initiated_at
    assert ended.processing_status == "ended"
    assert counts(ended) == {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 7, "expired": 0}
    results = results_by_id(sdk, created.id)
    assert sorted(line.result.type for line in results.values()) == ["canceled"] * 7 + ["succeeded"] * 3
    ran = {cid for cid, line in results.items() if line.result.type == "succeeded"}
    assert executed_requests(server) == dict.fromkeys(ran, 1)


def test_an_ended_batch_cannot_be_canceled(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    created = sdk.messages.batches.create(requests=message_requests(1))
    clock.advance(10.0)

    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.cancel(created.id)

    body: Any = caught.value.body
    assert body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": f"Message batch {created.id} has already ended and cannot be canceled.",
        },
        "request_id": caught.value.request_id,
    }


def test_a_batch_still_running_at_expires_at_ends_with_the_rest_expired(
    make_server: ServerFactory, clock: FakeClock
) -> None:
    server = make_server(clock=clock, flavour="anthropic", in_progress_seconds=10.0, expiry_seconds=4.0)
    with anthropic_client(server) as sdk:
        created = sdk.messages.batches.create(requests=message_requests(10))
        clock.advance(3.9)
        running = sdk.messages.batches.retrieve(created.id)
        clock.advance(0.1)
        ended = sdk.messages.batches.retrieve(created.id)

    assert running.processing_status == "in_progress"
    assert (ended.expires_at - ended.created_at).total_seconds() == pytest.approx(4)
    assert ended.ended_at == ended.expires_at
    assert counts(ended) == {"processing": 0, "succeeded": 4, "errored": 0, "canceled": 0, "expired": 6}


def test_the_expire_trigger_runs_half_the_requests_and_expires_the_rest(
    sdk: anthropic.Anthropic, clock: FakeClock
) -> None:
    created = sdk.messages.batches.create(requests=message_requests(6, model="claude-expire"))

    clock.advance(99.0)
    stalled = sdk.messages.batches.retrieve(created.id)
    clock.advance(1.0)
    ended = sdk.messages.batches.retrieve(created.id)

    assert stalled.processing_status == "in_progress"
    assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
    assert counts(ended) == {"processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 3}
    results = results_by_id(sdk, created.id)
    assert sorted(line.result.type for line in results.values()) == ["expired"] * 3 + ["succeeded"] * 3


def test_an_endless_batch_ignores_expiry_until_it_is_canceled(make_server: ServerFactory, clock: FakeClock) -> None:
    server = make_server(clock=clock, flavour="anthropic", **TIMING)
    server.mishaps.never_end_next(1)
    with anthropic_client(server) as sdk:
        created = sdk.messages.batches.create(requests=message_requests(4))
        clock.advance(500.0)
        running = sdk.messages.batches.retrieve(created.id)
        sdk.messages.batches.cancel(created.id)
        clock.advance(1.0)
        ended = sdk.messages.batches.retrieve(created.id)

    assert running.processing_status == "in_progress"
    assert counts(ended) == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 2, "expired": 0}


def test_delete_refuses_a_batch_that_has_not_ended(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    created = sdk.messages.batches.create(requests=message_requests(1))

    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.delete(created.id)

    assert "cancel it first" in caught.value.message
    assert sdk.messages.batches.retrieve(created.id).processing_status == "in_progress"


def test_results_are_not_found_before_the_batch_ends(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=message_requests(1))

    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.get(f"/v1/messages/batches/{created.id}/results", cast_to=bytes)

    assert "has not ended" in caught.value.message


def test_the_list_is_newest_first_and_pages_both_ways(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(sdk.messages.batches.create(requests=message_requests(1)).id)
        clock.advance(0.001)
    newest_first = list(reversed(ids))

    first = sdk.messages.batches.list(limit=2)
    older = sdk.messages.batches.list(limit=2, after_id=str(first.last_id))
    last = sdk.messages.batches.list(limit=2, after_id=str(older.last_id))
    newer = sdk.messages.batches.list(limit=2, before_id=str(last.first_id))
    newest = sdk.messages.batches.list(limit=2, before_id=str(newer.first_id))

    assert [b.id for b in first.data] == newest_first[:2] and first.has_more
    assert (first.first_id, first.last_id) == (newest_first[0], newest_first[1])
    assert [b.id for b in older.data] == newest_first[2:4] and older.has_more
    assert [b.id for b in last.data] == newest_first[4:] and last.has_more is False
    assert [b.id for b in newer.data] == newest_first[2:4] and newer.has_more
    assert [b.id for b in newest.data] == newest_first[:2] and newest.has_more is False
    assert [b.id for b in sdk.messages.batches.list(limit=2)] == newest_first  # the SDK's auto-paging
    # Paging towards newer batches: each page newest first, the pages from the cursor outwards.
    backwards = [b.id for b in sdk.messages.batches.list(limit=2, before_id=ids[0])]
    assert backwards == newest_first[2:4] + newest_first[:2]


def test_the_list_leaves_out_vanished_batches(make_server: ServerFactory, clock: FakeClock) -> None:
    server = make_server(clock=clock, flavour="anthropic", **TIMING)
    with anthropic_client(server) as sdk:
        kept = sdk.messages.batches.create(requests=message_requests(1))
        lost = sdk.messages.batches.create(requests=message_requests(1))
        server.mishaps.vanish(lost.id)

        assert [b.id for b in sdk.messages.batches.list()] == [kept.id]
        with pytest.raises(anthropic.NotFoundError):
            sdk.messages.batches.retrieve(lost.id)
        with pytest.raises(anthropic.NotFoundError):
            sdk.messages.batches.cancel(lost.id)


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"after_id": "msgbatch_unknown"}])
def test_bad_list_parameters_are_refused(sdk: anthropic.Anthropic, query: dict[str, Any]) -> None:
    sdk.messages.batches.create(requests=message_requests(1))

    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.batches.list(**query)


def test_a_list_with_both_cursors_is_refused(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=message_requests(1))

    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.batches.list(before_id=created.id, after_id=created.id)


def test_listed_batches_show_the_same_state_as_retrieve(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    created = sdk.messages.batches.create(requests=message_requests(2))
    clock.advance(10.0)

    listed = next(iter(sdk.messages.batches.list()))

    assert listed == sdk.messages.batches.retrieve(created.id)
    assert listed.processing_status == "ended"


def test_results_are_archived_29_days_after_creation(sdk: anthropic.Anthropic, clock: FakeClock) -> None:
    created = sdk.messages.batches.create(requests=message_requests(2))
    clock.advance(29 * 86_400 - 1)
    available = sdk.messages.batches.retrieve(created.id)
    assert len(list(sdk.messages.batches.results(created.id))) == 2
    clock.advance(1)

    archived = sdk.messages.batches.retrieve(created.id)

    assert available.archived_at is None
    assert archived.archived_at is not None
    assert (archived.archived_at - archived.created_at).total_seconds() == pytest.approx(29 * 86_400)
    with pytest.raises(anthropic.NotFoundError) as caught:
        list(sdk.messages.batches.results(created.id))
    assert "archived" in caught.value.message
