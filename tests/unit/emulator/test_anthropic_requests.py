"""What the anthropic flavour's create call refuses, and its headers: Anthropic's checks and error shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pytest

from daemon.emulator import EmulatorServer, anthropic_requests
from tests.unit.emulator.anthropic_helpers import message_requests, results_by_id, wait_ended
from tests.unit.emulator.conftest import ServerFactory

HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def with_change(index: int, change: dict[str, Any], count: int = 3) -> list[Any]:
    requests = message_requests(count)
    requests[index] = {**requests[index], **change}
    return requests


def with_params(index: int, change: dict[str, Any], drop: str | None = None) -> list[Any]:
    requests = message_requests(3)
    params = {**requests[index]["params"], **change}
    if drop is not None:
        del params[drop]
    requests[index] = {**requests[index], "params": params}
    return requests


BAD_REQUESTS = [
    pytest.param(with_change(1, {"custom_id": ""}), "requests.1.custom_id", id="empty custom_id"),
    pytest.param(with_change(1, {"custom_id": "x" * 65}), "requests.1.custom_id", id="65 characters"),
    pytest.param(with_change(2, {"custom_id": "a.b"}), "requests.2.custom_id", id="a dot"),
    pytest.param(with_change(0, {"custom_id": "naïve"}), "requests.0.custom_id", id="non-ascii"),
    pytest.param(with_change(0, {"custom_id": 7}), "requests.0.custom_id", id="not a string"),
    pytest.param(with_change(2, {"custom_id": "req-0"}), "Duplicate custom_id 'req-0'", id="duplicate"),
    pytest.param(with_change(1, {"extra": 1}), "requests.1.extra: Extra inputs", id="unknown field"),
    pytest.param(with_change(1, {"params": "text"}), "requests.1.params: Input should be a valid dict", id="params"),
    pytest.param([{"params": {}}], "requests.0.custom_id: Field required", id="no custom_id"),
    pytest.param([{"custom_id": "a"}], "requests.0.params: Field required", id="no params"),
    pytest.param(with_params(2, {"model": "claude-fail-validation"}), "Emulated validation", id="trigger"),
    pytest.param([], "at least 1 item", id="no requests"),
]


@pytest.mark.parametrize(("requests", "message"), BAD_REQUESTS)
def test_a_bad_request_fails_the_create_call_and_creates_nothing(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer, requests: list[Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.create(requests=requests)

    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert message in caught.value.body["error"]["message"]  # type: ignore[index]
    assert list(sdk.messages.batches.list()) == []
    assert not list(messages_server.data_dir.iterdir())  # the rejected requests were not kept


BAD_PARAMS = [
    pytest.param(with_params(0, {}, drop="model"), "model: Field required", id="no model"),
    pytest.param(with_params(0, {}, drop="max_tokens"), "max_tokens: Field required", id="no max_tokens"),
    pytest.param(with_params(0, {}, drop="messages"), "messages: Field required", id="no messages"),
    pytest.param(with_params(0, {"max_tokens": -1}), "max_tokens: Input should be", id="max_tokens -1"),
    pytest.param(with_params(0, {"max_tokens": "9"}), "max_tokens: Input should be", id="max_tokens text"),
    pytest.param(with_params(0, {"messages": []}), "messages: at least one", id="no message"),
    pytest.param(with_params(0, {"messages": ["hi"]}), "messages: each message", id="message text"),
    pytest.param(with_params(0, {"model": ""}), "model: Input should be", id="empty model"),
    pytest.param(with_params(0, {"stream": True}), "stream: streaming is not supported", id="stream"),
    pytest.param(with_params(0, {"temprature": 1}), "temprature: Extra inputs are not permitted", id="unknown"),
]


@pytest.mark.parametrize(("requests", "message"), BAD_PARAMS)
def test_bad_params_are_found_when_the_batch_runs_and_error_that_request(
    sdk: anthropic.Anthropic, requests: list[Any], message: str
) -> None:
    """As Anthropic does: params are validated asynchronously, so the create call succeeds."""
    created = sdk.messages.batches.create(requests=requests)

    batch = wait_ended(sdk, created.id)
    results = results_by_id(sdk, created.id)

    assert (batch.request_counts.errored, batch.request_counts.succeeded) == (1, 2)
    bad = results["req-0"].result
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"
    assert message in bad.error.error.message


def test_max_tokens_0_only_fills_the_cache_with_no_content(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.create(requests=with_params(0, {"max_tokens": 0}))

    wait_ended(sdk, created.id)
    result = results_by_id(sdk, created.id)["req-0"].result

    assert result.type == "succeeded"
    assert result.message.content == [] and result.message.stop_reason == "max_tokens"
    assert result.message.usage.output_tokens == 0


def test_custom_ids_of_64_allowed_characters_are_accepted(sdk: anthropic.Anthropic) -> None:
    ids = ["a" * 64, "A-z_0-9", "_", "-"]
    requests: list[Any] = [{**request, "custom_id": cid} for request, cid in zip(message_requests(4), ids, strict=True)]

    batch = sdk.messages.batches.create(requests=requests)

    assert batch.request_counts.processing == 4


def test_more_than_the_request_limit_is_refused(sdk: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_requests, "MAX_REQUESTS", 3)

    assert sdk.messages.batches.create(requests=message_requests(3)).request_counts.processing == 3
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.create(requests=message_requests(4))

    assert "at most 3 items" in caught.value.message


def test_the_body_limit_is_256_mb() -> None:
    assert anthropic_requests.MAX_BODY_BYTES == 256 * 1024 * 1024
    assert anthropic_requests.MAX_REQUESTS == 100_000


def test_a_sized_body_over_the_limit_is_refused_with_413(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anthropic_requests, "MAX_BODY_BYTES", 1000)

    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.batches.create(requests=message_requests(20))

    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert messages_server.batches() == []
    assert sdk.messages.batches.create(requests=message_requests(2)).request_counts.processing == 2


def test_a_chunked_body_over_the_limit_is_refused(
    messages_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(anthropic_requests, "MAX_BODY_BYTES", 1000)
    body = orjson.dumps({"requests": message_requests(20)})

    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.post("/v1/messages/batches", headers=HEADERS, content=iter([body[:500], body[500:]]))

    assert response.status_code == 413
    assert response.json() == {
        "type": "error",
        "error": {"type": "request_too_large", "message": response.json()["error"]["message"]},
        "request_id": response.headers["request-id"],
    }
    assert messages_server.batches() == []


def test_a_chunked_body_is_read_like_a_sized_one(messages_server: EmulatorServer) -> None:
    body = orjson.dumps({"requests": message_requests(5)})
    pieces = [body[start : start + 7] for start in range(0, len(body), 7)]

    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.post("/v1/messages/batches", headers=HEADERS, content=iter(pieces))
        again = http.get(f"/v1/messages/batches/{response.json()['id']}", headers=HEADERS)

    assert response.status_code == 200, response.text
    assert response.json()["request_counts"]["processing"] == 5
    assert again.status_code == 200  # the keep-alive connection is still in step


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"requests": [',
        b'{"requests": {}}',
        b'{"requests": [], "model": "x"}',
        b'{"other": 1}',
        b"{}",
        b'{"requests": [{"custom_id": "a", "params": {}}] } trailing',
        b'{"requests": [NaN]}',
        b"\xff\xfe",
    ],
)
def test_a_malformed_body_is_a_400_in_anthropic_shape(messages_server: EmulatorServer, body: bytes) -> None:
    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.post("/v1/messages/batches", headers=HEADERS, content=body)

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert messages_server.batches() == []


def test_a_call_without_a_key_is_a_401(messages_server: EmulatorServer) -> None:
    headers = {name: value for name, value in HEADERS.items() if name != "x-api-key"}

    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.get("/v1/messages/batches", headers=headers)

    assert response.status_code == 401
    assert response.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
        "request_id": response.headers["request-id"],
    }
    assert response.headers.get_list("request-id") == [response.json()["request_id"]]  # one id, not two


def test_a_key_as_x_api_key_or_bearer_is_accepted(messages_server: EmulatorServer) -> None:
    bearer = {"authorization": "Bearer k", "anthropic-version": "2023-06-01"}

    with httpx2.Client(base_url=messages_server.url) as http:
        by_header = http.get("/v1/messages/batches", headers=HEADERS)
        by_bearer = http.get("/v1/messages/batches", headers=bearer)

    assert (by_header.status_code, by_bearer.status_code) == (200, 200)


def test_a_call_without_anthropic_version_is_a_400(messages_server: EmulatorServer) -> None:
    headers = {name: value for name, value in HEADERS.items() if name != "anthropic-version"}

    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.get("/v1/messages/batches", headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }


def test_every_reply_names_its_request_in_a_request_id_header(sdk: anthropic.Anthropic) -> None:
    created = sdk.messages.batches.with_raw_response.create(requests=message_requests(1))
    missing = sdk.messages.batches.with_raw_response.retrieve
    with pytest.raises(anthropic.NotFoundError) as caught:
        missing("msgbatch_unknown")

    assert created.headers["request-id"].startswith("req_")
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "No message batch found with id 'msgbatch_unknown'."},
        "request_id": caught.value.request_id,
    }


def test_an_unknown_path_is_a_404_in_anthropic_shape(messages_server: EmulatorServer) -> None:
    with httpx2.Client(base_url=messages_server.url) as http:
        response = http.get("/v1/batches", headers=HEADERS)

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_only_the_anthropic_flavour_takes_chunked_bodies(make_server: ServerFactory) -> None:
    openai_server = make_server()

    with httpx2.Client(base_url=openai_server.url) as http:
        response = http.post(
            "/v1/batches", headers={"authorization": "Bearer k"}, content=iter([b'{"input_file_id": "f"}'])
        )

    assert response.status_code == 411
    assert response.json()["error"]["message"] == "A Content-Length header is required."
