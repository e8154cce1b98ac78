"""Files routes: upload rules, listing, retrieve/delete/content, auth and unknown routes."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from daemon.emulator import EmulatorServer
from tests.unit.emulator.helpers import download, jsonl, request_lines, upload


def test_upload_returns_a_file_object(client: openai.OpenAI, tmp_path: Path) -> None:
    content = jsonl(request_lines(3))
    uploaded = upload(client, tmp_path / "a.jsonl", content, name="job-1.jsonl")
    assert uploaded.id.startswith("file-")
    assert len(uploaded.id) == len("file-") + 24
    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "batch", "processed")
    assert uploaded.filename == "job-1.jsonl"
    assert uploaded.bytes == len(content)
    assert uploaded.expires_at == uploaded.created_at + 30 * 86_400  # the default for batch files
    assert download(client, uploaded.id) == content


def test_upload_keeps_a_unicode_filename_and_expiry(client: openai.OpenAI, tmp_path: Path) -> None:
    uploaded = upload(
        client,
        tmp_path / "u.jsonl",
        b"{}\n",
        name='données "été".jsonl',
        expires_after={"anchor": "created_at", "seconds": 7_200},
    )
    assert uploaded.filename == 'données "été".jsonl'
    assert uploaded.expires_at == uploaded.created_at + 7_200


def test_non_jsonl_name_is_rejected(client: openai.OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, tmp_path / "a.csv", b"{}\n", name="input.csv")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"] == "Invalid file format for Batch API. Must be .jsonl"
    assert caught.value.status_code == 400


def test_expiry_out_of_range_is_rejected(client: openai.OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.BadRequestError):
        upload(client, tmp_path / "a.jsonl", b"{}\n", expires_after={"anchor": "created_at", "seconds": 60})


def test_large_upload_streams_to_disk(client: openai.OpenAI, server: EmulatorServer, tmp_path: Path) -> None:
    line = b'{"custom_id":"x","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"%s"}}\n'
    content = b"".join(line.replace(b"%s", str(i).encode() * 50) for i in range(20_000))  # ~3 MB
    uploaded = upload(client, tmp_path / "big.jsonl", content)
    assert uploaded.bytes == len(content)
    assert server.file_bytes(uploaded.id) == content


def test_list_files_order_purpose_and_pagination(client: openai.OpenAI, tmp_path: Path) -> None:
    ids = [upload(client, tmp_path / f"{i}.jsonl", b"{}\n").id for i in range(5)]
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello")
    with path.open("rb") as handle:
        other = client.files.create(file=("notes.txt", handle, "text/plain"), purpose="user_data")
    newest_first = [f.id for f in client.files.list()]
    assert newest_first == [other.id, *reversed(ids)]
    assert [f.id for f in client.files.list(order="asc", purpose="batch")] == ids
    page = client.files.list(order="asc", purpose="batch", limit=2)
    assert [f.id for f in page.data] == ids[:2]
    assert page.has_more is True
    assert [f.id for f in client.files.list(order="asc", purpose="batch", limit=2, after=ids[1]).data] == ids[2:4]
    assert [f.id for f in client.files.list(order="asc", purpose="batch", limit=2)] == ids  # auto-paging
    with pytest.raises(openai.BadRequestError):
        client.files.list(limit=10_001)


def test_retrieve_delete_and_missing(client: openai.OpenAI, tmp_path: Path) -> None:
    uploaded = upload(client, tmp_path / "a.jsonl", b"{}\n")
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (uploaded.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        download(client, uploaded.id)
    assert client.files.list(after=uploaded.id).data == []  # a deleted file still works as a cursor


def test_missing_api_key_is_401(server: EmulatorServer) -> None:
    with httpx2.Client() as http:
        response = http.get(f"{server.base_url}/batches")
        bad_scheme = http.get(f"{server.base_url}/files", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}
    assert bad_scheme.status_code == 401


def test_unknown_route_is_404_and_routes_work_without_v1(server: EmulatorServer) -> None:
    headers = {"Authorization": "Bearer k"}
    with httpx2.Client(headers=headers) as http:
        unknown = http.get(f"{server.url}/v1/nothing")
        listing = http.get(f"{server.url}/files")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    assert listing.status_code == 200
    assert listing.json()["object"] == "list"
    assert server.calls.count("GET", "/v1/files") == 1


def test_content_is_octet_stream_with_length(client: openai.OpenAI, tmp_path: Path) -> None:
    content = jsonl(request_lines(2))
    uploaded = upload(client, tmp_path / "a.jsonl", content)
    with client.files.with_streaming_response.content(uploaded.id) as response:
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-length"] == str(len(content))
        assert b"".join(response.iter_bytes()) == content
