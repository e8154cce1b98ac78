"""The emulator's azure flavour, through the real SDK: each test pins one way Azure OpenAI differs from OpenAI."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import orjson
import pytest
from openai import Omit

from tests.integration.flavoured_emulators import (
    AZURE_KEY,
    DEPLOYMENT,
    ENTRA_TOKEN,
    azure_v1_client,
    azure_versioned_client,
    chat_lines,
    file_size,
    flavoured_emulator,
    statuses_until_terminal,
    submit_lines,
)
from tests.support import FakeClock
from tests.unit.emulator.helpers import download_lines


def test_v1_form_with_api_key_header_runs_a_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_v1_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(3, DEPLOYMENT))
        assert statuses_until_terminal(client, clock, batch.id)[-1] == "completed"
        calls = [(call.method, call.path, call.status) for call in server.calls.entries()]
    assert ("POST", "/openai/v1/batches", 200) in calls
    assert server.calls.count("POST", "/v1/batches") == 1  # faults and call counts use the usual routes


def test_api_version_form_of_azure_openai_client_runs_a_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_versioned_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, DEPLOYMENT))
        finished = client.batches.retrieve(batch.id) if clock.advance(3.0) else None
        assert finished is not None and finished.status == "completed"
        assert len(download_lines(client, finished.output_file_id)) == 2
    paths = {call.path for call in server.calls.entries()}
    assert {"/openai/files", "/openai/batches", f"/openai/batches/{batch.id}"} <= paths


def test_api_version_form_without_api_version_is_resource_not_found(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server:
        client = openai.OpenAI(base_url=f"{server.url}/openai", api_key=AZURE_KEY, max_retries=0)
        with client, pytest.raises(openai.NotFoundError) as caught:
            client.batches.list()
    assert caught.value.body == {"code": "404", "message": "Resource not found"}


def test_openai_paths_are_not_served(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=AZURE_KEY, max_retries=0)
        with client, pytest.raises(openai.NotFoundError) as caught:
            client.batches.list()
    assert caught.value.body == {"code": "404", "message": "Resource not found"}


def test_api_key_header_alone_is_accepted_on_the_v1_form(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server, azure_v1_client(server) as client:
        response = client.batches.with_raw_response.list(extra_headers={"Authorization": Omit()})
    assert response.status_code == 200 and "authorization" not in response.http_request.headers


def test_a_request_without_a_key_is_refused_in_azure_shape(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server:
        client = openai.OpenAI(base_url=server.base_url + "/", api_key=AZURE_KEY, max_retries=0)
        with client, pytest.raises(openai.AuthenticationError) as caught:
            client.batches.list(extra_headers={"Authorization": Omit()})
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "401" and "missing subscription key" in caught.value.body["message"]


def test_bearer_key_is_accepted_on_the_v1_form(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server:
        client = openai.OpenAI(base_url=server.base_url + "/", api_key=AZURE_KEY, max_retries=0)
        with client:
            assert client.batches.list().data == []


def test_bearer_on_the_api_version_form_must_be_an_entra_token(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server:
        with (
            azure_versioned_client(server, azure_ad_token="plain-api-key") as client,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            client.batches.list()
        with azure_versioned_client(server, azure_ad_token=ENTRA_TOKEN) as client:
            assert client.batches.list().data == []
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "401"


def test_a_model_that_is_no_deployment_fails_validation_with_model_not_found(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_v1_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "gpt-4o-mini"))
        clock.advance(1.0)
        failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data is not None
    error = failed.errors.data[0]
    assert (error.code, error.line, error.param) == ("model_not_found", 1, "body.model")
    assert "gpt-4o-mini" in (error.message or "")


def test_configured_deployments_are_the_models_lines_may_use(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = {"deployments": ("team-a-batch", "team-b-batch")}
    with flavoured_emulator(tmp_path, clock, "azure", **settings) as server, azure_v1_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "team-b-batch"))
        assert statuses_until_terminal(client, clock, batch.id)[-1] == "completed"


def test_lines_and_endpoint_may_leave_out_v1(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_versioned_client(server) as client:
        lines = chat_lines(2, DEPLOYMENT, url="/chat/completions")
        batch = submit_lines(client, tmp_path, lines, endpoint="/chat/completions")
        assert statuses_until_terminal(client, clock, batch.id)[-1] == "completed"
        output = download_lines(client, client.batches.retrieve(batch.id).output_file_id)
    assert sorted(line["custom_id"] for line in output) == ["req-0", "req-1"]
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in output)


def test_batches_never_expire_and_run_until_cancelled(tmp_path: Path) -> None:
    clock = FakeClock()
    deployment = "gpt-expire-batch"  # the emulator's `expire` trigger
    settings = {"deployments": (deployment,)}
    with flavoured_emulator(tmp_path, clock, "azure", **settings) as server, azure_v1_client(server) as c:
        batch = submit_lines(c, tmp_path, chat_lines(4, deployment))
        clock.advance(7 * 86_400.0)
        running = c.batches.retrieve(batch.id)
        assert running.status == "in_progress" and running.request_counts is not None
        assert running.request_counts.completed == 2  # stalled half-way, as a stuck job does
        c.batches.cancel(batch.id)
        clock.advance(1.0)
        cancelled = c.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled"
        assert len(download_lines(c, cancelled.output_file_id)) == 2


def test_a_clean_batch_has_an_empty_error_file(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_v1_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(3, DEPLOYMENT))
        clock.advance(3.0)
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.request_counts is not None and done.request_counts.failed == 0
        assert done.error_file_id and file_size(client, done.error_file_id) == 0
        assert client.files.retrieve(done.error_file_id).bytes == 0


def test_a_finished_batch_without_files_says_empty_string(tmp_path: Path) -> None:
    clock = FakeClock()
    with flavoured_emulator(tmp_path, clock, "azure") as server, azure_v1_client(server) as client:
        batch = submit_lines(client, tmp_path, chat_lines(2, "no-such-deployment"))
        assert (batch.output_file_id, batch.error_file_id) == (None, None)  # not finished: null
        clock.advance(1.0)
        response = client.batches.with_raw_response.retrieve(batch.id)
    raw = orjson.loads(response.text)
    assert raw["status"] == "failed"
    assert (raw["output_file_id"], raw["error_file_id"]) == ("", "")


def test_faults_and_control_endpoints_work_on_azure_paths(tmp_path: Path) -> None:
    with flavoured_emulator(tmp_path, FakeClock(), "azure") as server, azure_versioned_client(server) as client:
        server.faults.add_rule(action="status", method="GET", path_prefix="/batches", status=429, retry_after=1)
        with pytest.raises(openai.RateLimitError):
            client.batches.list()
        health = httpx2.get(f"{server.url}/_emulator/health")
    assert health.json() == {"status": "ok"}
    assert server.faults.fired == 1
