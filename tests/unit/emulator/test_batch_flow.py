"""The happy path in real time: upload, create, poll to completed, stream the results."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletion

from daemon.emulator import EmulatorServer
from tests.support import FakeClock
from tests.unit.emulator.helpers import (
    download_lines,
    jsonl,
    request_lines,
    run_to_end,
    submit,
    upload,
    wait_terminal,
)


def test_upload_create_poll_and_download(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    lines = request_lines(20)
    batch = submit(client, tmp_path, lines)
    assert batch.status == "validating"
    assert batch.id.startswith("batch_")
    assert len(batch.id) == len("batch_") + 24
    assert batch.expires_at == batch.created_at + 86_400

    done = wait_terminal(client, batch.id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (20, 20, 0)
    assert done.in_progress_at is not None
    assert done.finalizing_at is not None
    assert done.completed_at is not None
    assert done.model == "gpt-test"
    assert done.error_file_id is None
    assert done.usage is not None
    assert done.usage.input_tokens > 0
    assert done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens
    assert done.output_file_id is not None
    output_file = client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.filename == f"{batch.id}_output.jsonl"
    output = download_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in output] != [line["custom_id"] for line in lines]
    assert sorted(line["custom_id"] for line in output) == sorted(line["custom_id"] for line in lines)
    first = output[0]
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"].startswith("req_")
    assert server.calls.count("POST", "/v1/batches") == 1
    assert server.calls.count("GET", "/v1/batches/{batch_id}") >= 1


def test_output_is_deterministic_for_a_seed(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    lines = request_lines(12)
    first = submit(manual_client, tmp_path, lines)
    second = submit(manual_client, tmp_path, lines)
    outputs = [
        download_lines(manual_client, run_to_end(manual_client, clock, b.id).output_file_id) for b in (first, second)
    ]
    bodies = [[(line["custom_id"], line["response"]["body"]) for line in output] for output in outputs]
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize(
    "endpoint", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions", "/v1/moderations"]
)
def test_answer_shapes(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path, endpoint: str) -> None:
    client = manual_client
    batch = submit(client, tmp_path, request_lines(3, endpoint=endpoint), endpoint=endpoint)
    done = run_to_end(client, clock, batch.id)
    assert done.status == "completed"
    bodies = {line["custom_id"]: line["response"]["body"] for line in download_lines(client, done.output_file_id)}
    body = bodies["req-1"]
    if endpoint == "/v1/chat/completions":
        assert body["object"] == "chat.completion"
        assert "question 1" in body["choices"][0]["message"]["content"]
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    elif endpoint == "/v1/embeddings":
        assert body["object"] == "list"
        assert len(body["data"]) == 1
        assert len(body["data"][0]["embedding"]) == 8
    elif endpoint == "/v1/responses":
        assert body["object"] == "response"
        assert "question 1" in body["output"][0]["content"][0]["text"]
        assert body["usage"]["input_tokens"] > 0
    elif endpoint == "/v1/completions":
        assert body["object"] == "text_completion"
        assert "prompt 1" in body["choices"][0]["text"]
    else:
        assert len(body["results"]) == 1
        assert body["results"][0]["flagged"] is False


def test_embedding_inputs_of_every_form(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    client = manual_client
    inputs = ["one", ["a", "b", "c"], [1, 2, 3], [[1, 2], [3, 4]]]
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "emb", "input": value}}
        for i, value in enumerate(inputs)
    ]
    done = run_to_end(client, clock, submit(client, tmp_path, lines, endpoint="/v1/embeddings").id)
    counts = {
        line["custom_id"]: len(line["response"]["body"]["data"]) for line in download_lines(client, done.output_file_id)
    }
    assert counts == {"e0": 1, "e1": 3, "e2": 1, "e3": 2}


def test_sdk_parses_a_chat_line(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    done = run_to_end(manual_client, clock, submit(manual_client, tmp_path, request_lines(1)).id)
    line = download_lines(manual_client, done.output_file_id)[0]
    completion = ChatCompletion.model_validate(line["response"]["body"])
    assert completion.choices[0].message.role == "assistant"


def test_input_file_deleted_mid_batch_still_completes(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    client = manual_client
    uploaded = upload(client, tmp_path / "in.jsonl", jsonl(request_lines(3)))
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.files.delete(uploaded.id).deleted is True
    done = run_to_end(client, clock, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert done.request_counts.completed == 3
