"""Injected faults, set from Python (server.faults) and over HTTP (/_emulator/faults)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import orjson
import pytest

from daemon.emulator import EmulatorServer, FaultRule
from tests.support import wait_until
from tests.unit.emulator.conftest import make_client
from tests.unit.emulator.helpers import jsonl, request_lines, upload


def create_batch(client: openai.OpenAI, tmp_path: Path) -> openai.types.Batch:
    uploaded = upload(client, tmp_path / "in.jsonl", jsonl(request_lines(2)))
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")


def test_error_rate_fails_requests_without_processing(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.set_error_rate(1.0, status=503, count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            client.batches.list()
        assert caught.value.status_code == 503
        assert caught.value.type == "server_error"
    assert client.batches.list().data == []  # the budget is spent
    assert server.faults.fired == 2


def test_error_rate_is_a_fraction(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.set_error_rate(0.5)
    failures = 0
    for _ in range(40):
        try:
            client.files.list()
        except openai.InternalServerError:
            failures += 1
    assert 5 < failures < 35
    assert server.faults.fired == failures


def test_rate_limit_with_retry_after(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    server.faults.add_rule(action="status", method="POST", path_prefix="/v1/batches", status=429, retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        create_batch(client, tmp_path)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    assert server.batches() == []  # rejected before processing
    assert server.calls.count("POST", "/v1/batches") == 1


def test_retry_after_ms_is_honoured_by_the_sdk(server: EmulatorServer, tmp_path: Path) -> None:
    server.faults.add_rule(action="status", path_prefix="/files", method="GET", status=429, retry_after_ms=10)
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=1) as client:
        assert client.files.list().data == []
    assert server.calls.count("GET", "/v1/files") == 2


def test_drop_closes_without_a_response(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.add_rule(FaultRule(action="drop", method="GET", path_prefix="/v1/batches"))
    with pytest.raises(openai.APIConnectionError):
        client.batches.list()
    assert client.batches.list().data == []
    statuses = [call.status for call in server.calls.entries()]
    assert statuses == [0, 200]


def test_error_after_processing_creates_the_batch(
    client: openai.OpenAI, server: EmulatorServer, tmp_path: Path
) -> None:
    server.faults.add_rule(action="status", method="POST", path_prefix="/v1/batches", status=500, after_processing=True)
    with pytest.raises(openai.InternalServerError):
        create_batch(client, tmp_path)
    assert len(server.batches()) == 1
    assert [b.id for b in client.batches.list()] == [server.batches()[0]["id"]]


def test_drop_after_processing_creates_the_batch(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    server.faults.add_rule(action="drop", method="POST", path_prefix="/v1/batches", after_processing=True)
    with pytest.raises(openai.APIConnectionError):
        create_batch(client, tmp_path)
    assert len(server.batches()) == 1


def test_lost_response_plus_sdk_retry_duplicates_the_batch(server: EmulatorServer, tmp_path: Path) -> None:
    server.faults.add_rule(
        action="status", method="POST", path_prefix="/v1/batches", status=500, after_processing=True, retry_after_ms=1
    )
    with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=1) as client:
        created = create_batch(client, tmp_path)
    assert len(server.batches()) == 2
    assert created.id == server.batches()[1]["id"]
    assert server.calls.count("POST", "/v1/batches") == 2


def test_slow_response_times_out_and_stop_interrupts_it(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.add_rule(action="slow", method="GET", path_prefix="/v1/files", delay=30)
    with pytest.raises(openai.APITimeoutError):
        client.files.list(timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0


def test_short_slow_response_still_answers(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.add_rule(action="slow", method="GET", path_prefix="/v1/files", delay=0.05)
    started = time.monotonic()
    assert client.files.list().data == []
    assert time.monotonic() - started >= 0.05


def collect(response: Any, sink: bytearray) -> None:
    for chunk in response.iter_bytes(4096):
        sink.extend(chunk)


def test_drop_midway_cuts_a_download(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    content = jsonl(request_lines(2_000))
    uploaded = upload(client, tmp_path / "big.jsonl", content)
    server.faults.add_rule(action="drop_midway", method="GET", path_prefix=f"/v1/files/{uploaded.id}/content")
    received = bytearray()
    with client.files.with_streaming_response.content(uploaded.id) as response:
        assert response.headers["content-length"] == str(len(content))
        with pytest.raises(httpx2.HTTPError) as caught:
            collect(response, received)
    assert isinstance(caught.value, httpx2.RemoteProtocolError)
    assert 0 < len(received) < len(content)
    with client.files.with_streaming_response.content(uploaded.id) as response:
        assert b"".join(response.iter_bytes()) == content  # the rule is spent


def test_rules_fire_count_times(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.add_rule(action="status", status=502, path_prefix="/batches", count=3)
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            client.batches.list()
    assert client.batches.list().data == []
    assert server.faults.rules() == []


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault action"):
        FaultRule(action="explode")
    with pytest.raises(ValueError, match="count"):
        FaultRule(action="drop", count=0)


def test_http_control_endpoint(server: EmulatorServer, client: openai.OpenAI) -> None:
    rule = {"method": "GET", "path_prefix": "/batches", "action": "status", "status": 503, "count": 2}
    with httpx2.Client() as http:
        applied = http.post(f"{server.url}/_emulator/faults", json={"rules": [rule]})
        assert applied.status_code == 200
        assert applied.json()["rules"][0]["path_prefix"] == "/v1/batches"
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                client.batches.list()
        assert client.batches.list().data == []
        state = http.get(f"{server.url}/_emulator/faults").json()
        assert state["rules"] == []
        assert state["fired"] == 2
        invalid = http.post(f"{server.url}/_emulator/faults", json={"rules": [{"action": "explode"}]})
        assert invalid.status_code == 400
        http.post(f"{server.url}/_emulator/faults", json={"error_rate": 1.0, "error_status": 500})
        with pytest.raises(openai.InternalServerError):
            client.files.list()
        cleared = http.delete(f"{server.url}/_emulator/faults").json()
        assert cleared["error_rate"] == 0.0
        calls = http.get(f"{server.url}/_emulator/calls").json()
    assert client.files.list().data == []
    assert {"method": "GET", "route": "/v1/batches", "count": 3} in calls["counts"]


def test_faults_do_not_touch_a_second_server(make_server: object, server: EmulatorServer) -> None:
    assert callable(make_server)
    other: EmulatorServer = make_server()
    server.faults.set_error_rate(1.0)
    with make_client(other) as client:
        assert client.batches.list().data == []


def download(client: openai.OpenAI, file_id: str) -> bytes:
    with client.files.with_streaming_response.content(file_id) as response:
        assert response.status_code == 200
        return b"".join(response.iter_bytes())


@pytest.mark.parametrize(
    "mode", ["empty", "garbage", "bogus_json", "truncate", "drop_lines", "extra_ids", "duplicate_ids"]
)
def test_tamper_changes_a_download(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path, mode: str) -> None:
    content = jsonl(request_lines(5))
    lines = content.splitlines(keepends=True)
    uploaded = upload(client, tmp_path / "in.jsonl", content)
    server.faults.add_rule(action="tamper", mode=mode, lines=2)
    assert [f.id for f in client.files.list()] == [uploaded.id], "listings are never tampered with"
    body = download(client, uploaded.id)
    parsed = [orjson.loads(x) for x in body.splitlines()] if mode not in ("garbage", "truncate") else []
    if mode == "empty":
        assert body == b""
    elif mode == "garbage":
        assert body.startswith(b"<!DOCTYPE html>") and b"custom_id" not in body
    elif mode == "bogus_json":
        assert len(parsed) == 1 and "custom_id" not in parsed[0] and len(body) > 1 << 20
    elif mode == "truncate":
        assert body == content[: len(content) // 2] and not body.endswith(b"\n")
    elif mode == "drop_lines":
        assert body == b"".join(lines[2:])
    elif mode == "extra_ids":
        assert body.startswith(content) and [x["custom_id"] for x in parsed[5:]] == [
            "emulator-extra-0",
            "emulator-extra-1",
        ]
    else:
        assert body.startswith(content) and [x["custom_id"] for x in parsed[5:]] == ["req-0", "req-1"]
        assert [x["id"] for x in parsed[5:]] == ["batch_req_duplicate_0", "batch_req_duplicate_1"]
    assert download(client, uploaded.id) == content, "the rule is spent"


def test_tamper_over_http(server: EmulatorServer, client: openai.OpenAI, tmp_path: Path) -> None:
    content = jsonl(request_lines(3))
    uploaded = upload(client, tmp_path / "in.jsonl", content)
    rule = {"action": "tamper", "mode": "drop_lines", "lines": 1, "count": 2}
    with httpx2.Client() as http:
        assert http.post(f"{server.url}/_emulator/faults", json={"rules": [rule]}).status_code == 200
        assert [download(client, uploaded.id) for _ in range(3)] == [content.split(b"\n", 1)[1]] * 2 + [content]
        bad = http.post(f"{server.url}/_emulator/faults", json={"rules": [{"action": "tamper", "mode": "nonsense"}]})
        assert bad.status_code == 400 and "tamper mode" in bad.text
    with pytest.raises(ValueError, match="lines"):
        FaultRule(action="tamper", mode="drop_lines", lines=0)
    with pytest.raises(ValueError, match="unknown tamper mode None"):
        FaultRule(action="tamper")


def test_hold_keeps_a_request_until_released(client: openai.OpenAI, server: EmulatorServer) -> None:
    server.faults.add_rule(action="hold", method="GET", path_prefix="/v1/files")
    answered = threading.Event()

    def call() -> None:
        client.files.list()
        answered.set()

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    wait_until(lambda: server.faults.holding == 1, 5.0, "the call to be held")
    assert not answered.is_set()
    assert client.batches.list().data == []  # other calls go on meanwhile
    server.faults.release()
    assert answered.wait(5.0)
    caller.join(5.0)
    assert server.faults.holding == 0


def test_min_bytes_matches_big_bodies_only(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    server.faults.add_rule(action="status", status=503, method="POST", path_prefix="/v1/files", min_bytes=10_000)
    small = upload(client, tmp_path / "small.jsonl", jsonl(request_lines(2)))  # under min_bytes: not matched
    assert small.id
    with pytest.raises(openai.InternalServerError):
        upload(client, tmp_path / "big.jsonl", jsonl(request_lines(200)))
    assert server.faults.rules() == []


def test_hold_rule_validation() -> None:
    with pytest.raises(ValueError, match="min_bytes"):
        FaultRule(action="drop", min_bytes=-1)
    with pytest.raises(ValueError, match="before processing"):
        FaultRule(action="hold", after_processing=True)
