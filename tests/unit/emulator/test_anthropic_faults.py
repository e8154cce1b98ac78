"""Injected faults against the anthropic flavour, seen through the real SDK: lost replies, 5xx, 429,
slow, cut and tampered results downloads, the creation limit and the control endpoints."""

from __future__ import annotations

import time

import anthropic
import httpx2
import pytest

from daemon.emulator import EmulatorServer
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests, wait_ended
from tests.unit.emulator.conftest import ServerFactory

BATCHES = "/v1/messages/batches"
HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}


def listed(sdk: anthropic.Anthropic) -> list[str]:
    return [batch.id for batch in sdk.messages.batches.list()]


def test_a_create_whose_reply_is_lost_still_creates_the_batch(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    messages_server.faults.add_rule(action="drop", method="POST", path_prefix=BATCHES, after_processing=True)

    with pytest.raises(anthropic.APIConnectionError):
        sdk.messages.batches.create(requests=message_requests(3))

    assert len(listed(sdk)) == 1  # processed: a client retrying blindly would pay twice
    assert messages_server.calls.count("POST", BATCHES) == 1


def test_a_5xx_after_processing_also_leaves_the_batch_created(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    messages_server.faults.add_rule(
        action="status", status=500, method="POST", path_prefix=BATCHES, after_processing=True
    )

    with pytest.raises(anthropic.InternalServerError):
        sdk.messages.batches.create(requests=message_requests(2))

    assert len(listed(sdk)) == 1


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (500, "api_error", anthropic.InternalServerError),
        (503, "api_error", anthropic.APIStatusError),
        (529, "overloaded_error", anthropic.APIStatusError),
    ],
)
def test_a_5xx_before_processing_creates_nothing_and_has_anthropic_shape(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer, status: int, error_type: str, kind: type[Exception]
) -> None:
    messages_server.faults.add_rule(action="status", status=status, method="POST", path_prefix=BATCHES)

    with pytest.raises(kind) as caught:
        sdk.messages.batches.create(requests=message_requests(2))

    assert isinstance(caught.value, anthropic.APIStatusError) and caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": f"Emulated fault: HTTP {status}."},
        "request_id": caught.value.request_id,
    }
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_")
    assert listed(sdk) == []


def test_a_429_carries_retry_after(sdk: anthropic.Anthropic, messages_server: EmulatorServer) -> None:
    messages_server.faults.add_rule(action="status", status=429, retry_after=7, path_prefix=BATCHES, count=1)

    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.batches.list()

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert listed(sdk) == []  # the rule was used up


def test_the_creation_limit_answers_429_with_retry_after(make_server: ServerFactory) -> None:
    server = make_server(flavour="anthropic", create_limit=1, create_window=60.0)
    with anthropic_client(server) as sdk:
        sdk.messages.batches.create(requests=message_requests(1))
        with pytest.raises(anthropic.RateLimitError) as caught:
            sdk.messages.batches.create(requests=message_requests(1))

        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
        assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert len(listed(sdk)) == 1
    kept = [path for path in server.data_dir.iterdir() if path.name.startswith("requests-")]
    assert len(kept) == 1  # the refused create's requests were not kept


def test_the_creation_limit_comes_before_the_body_is_read(make_server: ServerFactory) -> None:
    server = make_server(flavour="anthropic", create_limit=1, create_window=60.0)
    with anthropic_client(server) as sdk:
        sdk.messages.batches.create(requests=message_requests(1))
    with httpx2.Client(base_url=server.url, headers=HEADERS) as http:
        refused = http.post(BATCHES, content=b"not even JSON")

    assert refused.status_code == 429  # not the 400 the body would get
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_the_random_error_rate_answers_in_anthropic_shape(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    messages_server.faults.set_error_rate(1.0, status=502, count=1)

    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk.messages.batches.list()

    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert listed(sdk) == []


def ended_batch(sdk: anthropic.Anthropic, count: int = 4) -> str:
    return wait_ended(sdk, sdk.messages.batches.create(requests=message_requests(count)).id).id


def download(server: EmulatorServer, batch_id: str) -> bytes:
    with httpx2.Client(base_url=server.url) as http:
        response = http.get(f"{BATCHES}/{batch_id}/results", headers=HEADERS)
        response.raise_for_status()
        return response.content


def test_a_slow_results_download_times_out_a_client_then_arrives(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    batch_id = ended_batch(sdk)
    results = f"{BATCHES}/{batch_id}/results"
    messages_server.faults.add_rule(action="slow", delay=2.0, method="GET", path_prefix=results)
    messages_server.faults.add_rule(action="slow", delay=0.3, method="GET", path_prefix=results)

    with pytest.raises(anthropic.APITimeoutError):
        list(sdk.with_options(timeout=0.2).messages.batches.results(batch_id))
    started = time.monotonic()
    lines = list(sdk.messages.batches.results(batch_id))

    assert time.monotonic() - started >= 0.3
    assert len(lines) == 4


def test_a_results_download_cut_midway_fails_the_reader(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer
) -> None:
    batch_id = ended_batch(sdk, 20)
    messages_server.faults.add_rule(action="drop_midway", method="GET", path_prefix=f"{BATCHES}/{batch_id}/results")

    with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
        list(sdk.messages.batches.results(batch_id))
    assert len(list(sdk.messages.batches.results(batch_id))) == 20  # the next download is whole


def test_a_retrieve_reply_cut_midway_fails_the_sdk(sdk: anthropic.Anthropic, messages_server: EmulatorServer) -> None:
    batch_id = ended_batch(sdk)
    messages_server.faults.add_rule(action="drop_midway", method="GET", path_prefix=f"{BATCHES}/{batch_id}")

    with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
        sdk.messages.batches.retrieve(batch_id)  # a JSON reply cut in half


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("empty", lambda original, got: got == b""),
        ("garbage", lambda original, got: got.startswith(b"<!DOCTYPE html>")),
        ("truncate", lambda original, got: got == original[: len(original) // 2]),
        ("drop_lines", lambda original, got: got == b"".join(original.splitlines(keepends=True)[2:])),
        ("extra_ids", lambda original, got: got.startswith(original) and b"emulator-extra-1" in got),
        ("duplicate_ids", lambda original, got: got.startswith(original) and len(got.splitlines()) == 6),
    ],
)
def test_a_tampered_results_download(
    sdk: anthropic.Anthropic, messages_server: EmulatorServer, mode: str, check: object
) -> None:
    batch_id = ended_batch(sdk)
    original = download(messages_server, batch_id)
    messages_server.faults.add_rule(action="tamper", mode=mode, lines=2)

    tampered = download(messages_server, batch_id)

    assert callable(check) and check(original, tampered), tampered[:200]
    assert download(messages_server, batch_id) == original


def test_tampered_lines_still_look_like_result_lines(sdk: anthropic.Anthropic, messages_server: EmulatorServer) -> None:
    batch_id = ended_batch(sdk)
    messages_server.faults.add_rule(action="tamper", mode="extra_ids", lines=1)

    lines = list(sdk.messages.batches.results(batch_id))

    assert [line.custom_id for line in lines].count("emulator-extra-0") == 1
    assert len(lines) == 5


def test_malformed_replies_spare_results_downloads(sdk: anthropic.Anthropic, messages_server: EmulatorServer) -> None:
    batch_id = ended_batch(sdk)
    original = download(messages_server, batch_id)
    messages_server.faults.set_reply_rate(1.0)

    assert download(messages_server, batch_id) == original
    with httpx2.Client(base_url=messages_server.url) as http:
        answer = http.get(f"{BATCHES}/{batch_id}", headers=HEADERS)
    assert answer.status_code == 200 and b"processing_status" not in answer.content  # a malformed 200


def test_faults_and_mishaps_can_be_set_over_http(sdk: anthropic.Anthropic, messages_server: EmulatorServer) -> None:
    created = sdk.messages.batches.create(requests=message_requests(1))
    with httpx2.Client(base_url=messages_server.url) as http:
        rules = {"rules": [{"action": "status", "status": 429, "retry_after": 3, "path_prefix": BATCHES}]}
        assert http.post("/_emulator/faults", json=rules).status_code == 200
        assert http.post("/_emulator/batches", json={"vanish": [created.id]}).status_code == 200

    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.batches.list()
    assert listed(sdk) == []  # vanished
