"""Batch routes: parameter validation, metadata, listing and pagination."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from daemon.emulator import EmulatorServer
from tests.unit.emulator.helpers import jsonl, request_lines, upload


@pytest.fixture
def input_file_id(client: openai.OpenAI, tmp_path: Path) -> str:
    return upload(client, tmp_path / "in.jsonl", jsonl(request_lines(2))).id


def create(client: openai.OpenAI, file_id: str, **overrides: Any) -> openai.types.Batch:
    params: dict[str, Any] = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **overrides,
    }
    return client.batches.create(**params)


def test_metadata_round_trip(client: openai.OpenAI, input_file_id: str) -> None:
    metadata = {"job": "job-42", "k" * 64: "v" * 512}
    batch = create(client, input_file_id, metadata=metadata)
    assert batch.metadata == metadata
    assert client.batches.retrieve(batch.id).metadata == metadata
    assert create(client, input_file_id).metadata is None


@pytest.mark.parametrize(
    "metadata",
    [
        {f"key{i}": "v" for i in range(17)},
        {"k" * 65: "v"},
        {"key": "v" * 513},
    ],
    ids=["too-many-pairs", "key-too-long", "value-too-long"],
)
def test_metadata_limits(client: openai.OpenAI, input_file_id: str, metadata: dict[str, str]) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        create(client, input_file_id, metadata=metadata)
    assert caught.value.param == "metadata"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"endpoint": "/v1/audio/speech"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"input_file_id": "file-doesnotexist"}, "input_file_id"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after.seconds"),
    ],
)
def test_invalid_parameters(client: openai.OpenAI, input_file_id: str, overrides: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        create(client, input_file_id, **overrides)
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"


def test_all_eight_endpoints_are_accepted(client: openai.OpenAI, input_file_id: str) -> None:
    endpoints = [
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/completions",
        "/v1/moderations",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/videos",
    ]
    for endpoint in endpoints:
        assert create(client, input_file_id, endpoint=endpoint).endpoint == endpoint


def test_input_must_have_purpose_batch(client: openai.OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"{}\n")
    with path.open("rb") as handle:
        other = client.files.create(file=("x.jsonl", handle, "application/jsonl"), purpose="user_data")
    with pytest.raises(openai.BadRequestError):
        create(client, other.id)


def test_unknown_argument_and_bad_json_are_rejected(server: EmulatorServer, input_file_id: str) -> None:
    with httpx2.Client(headers={"Authorization": "Bearer k"}) as http:
        unknown = http.post(
            f"{server.base_url}/batches",
            json={"input_file_id": input_file_id, "endpoint": "/v1/embeddings", "completion_window": "24h", "x": 1},
        )
        broken = http.post(f"{server.base_url}/batches", content=b"{nope", headers={"Content-Type": "application/json"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "x"
    assert broken.status_code == 400


def test_list_is_newest_first_with_cursor_pagination(client: openai.OpenAI, input_file_id: str) -> None:
    ids = [create(client, input_file_id).id for _ in range(5)]
    newest_first = list(reversed(ids))
    first_page = client.batches.list(limit=2)
    assert [b.id for b in first_page.data] == newest_first[:2]
    assert first_page.has_more is True
    extra = first_page.model_extra or {}
    assert extra["first_id"] == newest_first[0]
    assert extra["last_id"] == newest_first[1]
    second_page = client.batches.list(limit=2, after=newest_first[1])
    assert [b.id for b in second_page.data] == newest_first[2:4]
    last_page = client.batches.list(limit=2, after=newest_first[3])
    assert [b.id for b in last_page.data] == newest_first[4:]
    assert last_page.has_more is False
    assert [b.id for b in client.batches.list(limit=2)] == newest_first  # SDK auto-paging
    assert len(client.batches.list().data) == 5  # default limit 20
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError):
            client.batches.list(limit=limit)


def test_missing_batch_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_000000000000000000000000")


def test_snapshots_for_assertions(client: openai.OpenAI, server: EmulatorServer, input_file_id: str) -> None:
    batch = create(client, input_file_id, metadata={"job": "1"})
    snapshot = server.batches()
    assert [b["id"] for b in snapshot] == [batch.id]
    snapshot[0]["metadata"]["job"] = "changed"
    assert server.batches()[0]["metadata"] == {"job": "1"}
    assert [f["id"] for f in server.files()] == [input_file_id]
