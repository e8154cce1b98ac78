"""Malformed 200 replies, at the boundary: each raises MalformedReplyError naming the call and field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.emulator.faults import FaultRule
from daemon.emulator.params import BatchParams, UploadParams
from daemon.errors import MalformedReplyError
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.sdk_errors import error_counts
from tests.support import TEST_KEY

ENDPOINT = "/v1/chat/completions"
# Stands for anything a reply could carry that must not reach a message or a log.
SECRET = "sk-never-in-a-message"


@pytest.fixture
def remote(emulator: EmulatorServer) -> Iterator[OpenAIService]:
    client = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
    yield client
    client.close()


def _batch(emulator: EmulatorServer, owner: str = "us") -> dict[str, Any]:
    """A batch straight in the emulator's store (no API call), as the API would return it."""
    staged = emulator.store.staging_path()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    staged.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": ENDPOINT, "body": body}) + "\n")
    upload = emulator.store.add_upload(staged, f"{owner}.jsonl", UploadParams("batch", None))
    created = emulator.store.create_batch(BatchParams(upload["id"], ENDPOINT, "24h", {"owner": owner}, None))
    return next(b for b in emulator.batches() if b["id"] == created["id"])


def _reply(emulator: EmulatorServer, method: str, path: str, body: str, **rule: Any) -> None:
    emulator.faults.add_rule(action="reply", method=method, path_prefix=path, body=body, **rule)


def _upload(remote: OpenAIService, tmp_path: Path) -> str:
    source = tmp_path / "in.jsonl"
    source.write_text('{"custom_id": "r0"}\n')
    return remote.upload(source, "in.jsonl")


def _raises(call: str, field: str) -> Any:
    return pytest.raises(MalformedReplyError, match=rf"^malformed reply to {call}: .*{field}")


FILE_OK = {"id": "file-ok", "object": "file", "bytes": 3, "created_at": 1, "filename": "in.jsonl", "purpose": "batch"}


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        (json.dumps({"id": 5}), "application/json", "id is not a valid id"),
        (json.dumps({**FILE_OK, "id": "file-1/../x"}), "application/json", "id is not a valid id"),
        (json.dumps({**FILE_OK, "id": ""}), "application/json", "id is not a valid id"),
        (json.dumps({**FILE_OK, "id": "file 1"}), "application/json", "id is not a valid id"),
        (json.dumps({**FILE_OK, "id": "f" * 300}), "application/json", "id is not a valid id"),
        (json.dumps({**FILE_OK, "filename": None}), "application/json", "filename"),
        (json.dumps({**FILE_OK, "created_at": "yesterday"}), "application/json", "created_at"),
        (f"<html>{SECRET}</html>", "text/html", "not a FileObject"),
        (f"<html>{SECRET}</html>", "application/json", "could not be read"),
        ("", "application/json", "could not be read"),
        (json.dumps(["file-ok"]), "application/json", "not a FileObject"),
    ],
)
def test_malformed_upload_reply_names_the_field(
    emulator: EmulatorServer, remote: OpenAIService, tmp_path: Path, body: str, content_type: str, field: str
) -> None:
    _reply(emulator, "POST", "/files", body, content_type=content_type)
    with _raises("files.create", field) as caught:
        _upload(remote, tmp_path)
    assert SECRET not in str(caught.value)
    assert caught.value.ambiguous, "a POST whose reply cannot be read may have been carried out"


def test_a_well_formed_upload_reply_passes(emulator: EmulatorServer, remote: OpenAIService, tmp_path: Path) -> None:
    _reply(emulator, "POST", "/files", json.dumps(FILE_OK))
    assert _upload(remote, tmp_path) == "file-ok"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": 7}, "id is not a valid id"),
        ({"status": 3}, "status"),
        ({"status": "in progress\n"}, "status"),
        ({"created_at": "2026-01-01"}, "created_at"),
        ({"completed_at": 1.5}, "completed_at"),
        ({"request_counts": {"total": 1, "completed": "three", "failed": 0}}, "request_counts.completed"),
        ({"request_counts": {"total": -1, "completed": 0, "failed": 0}}, "request_counts.total"),
        ({"request_counts": 5}, "request_counts"),
        ({"output_file_id": 7}, "output_file_id"),
        ({"error_file_id": "../errors"}, "error_file_id"),
        ({"input_file_id": ["file-1"]}, "input_file_id"),
        ({"metadata": {"owner": 1}}, "metadata"),
        ({"metadata": ["owner"]}, "metadata"),
        ({"errors": {"data": "token_limit_exceeded"}}, "errors.data"),
        ({"errors": {"data": [{"code": 1, "message": "m"}]}}, r"errors.data\[\].code"),
        ({"errors": {"data": [{"code": "c", "line": "seven"}]}}, r"errors.data\[\].line"),
        ({"errors": ["x"]}, "errors"),
        ({"request_counts": {"total": 1}}, "request_counts.completed"),
        ({"completion_window": None}, "completion_window is not what a batch holds"),
        ({"usage": {"input_tokens": "many"}}, "usage"),
    ],
)
def test_malformed_batch_reply_names_the_field(
    emulator: EmulatorServer, remote: OpenAIService, change: dict[str, Any], field: str
) -> None:
    batch = _batch(emulator)
    _reply(emulator, "GET", f"/batches/{batch['id']}", json.dumps({**batch, **change, "note": SECRET}))
    with _raises("batches.retrieve", field) as caught:
        remote.retrieve(batch["id"])
    assert SECRET not in str(caught.value)


def test_a_reply_for_another_batch_is_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    ours, other = _batch(emulator), _batch(emulator, "them")
    _reply(emulator, "GET", f"/batches/{ours['id']}", json.dumps(other))
    with _raises("batches.retrieve", "not the batch asked for"):
        remote.retrieve(ours["id"])


def test_an_unknown_status_is_not_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = _batch(emulator)
    _reply(emulator, "GET", f"/batches/{batch['id']}", json.dumps({**batch, "status": "queued"}))
    assert str(remote.retrieve(batch["id"]).status) == "queued"  # the poller warns about it and polls on


def test_azure_empty_file_ids_are_not_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = _batch(emulator)
    azure = {**batch, "output_file_id": "", "error_file_id": None, "request_counts": None, "errors": None}
    _reply(emulator, "GET", f"/batches/{batch['id']}", json.dumps(azure))
    # Not malformed, and read at the seam as what it means: no file.
    assert remote.retrieve(batch["id"]).output_file_id is None


def test_html_reply_to_batch_create_is_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = _batch(emulator)
    _reply(emulator, "POST", "/batches", f"<html>{SECRET}</html>", content_type="text/html", after_processing=True)
    before = error_counts().get("transient", 0)
    with _raises("batches.create", "not a Batch object") as caught:
        remote.create_batch(batch["input_file_id"], ENDPOINT, "24h", {"owner": "us"}, None)
    assert SECRET not in str(caught.value)
    assert error_counts().get("transient", 0) == before + 1, "counted once as a failed call"
    assert len(emulator.batches()) == 2, "after_processing: the batch was created, only its reply replaced"


def test_malformed_cancel_reply_is_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = _batch(emulator)
    _reply(emulator, "POST", f"/batches/{batch['id']}/cancel", json.dumps({**batch, "status": None}))
    with _raises("batches.cancel", "status"):
        remote.cancel(batch["id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [(json.dumps({"object": "list", "data": 5}), "data"), ("<html></html>", "could not be read")],
)
def test_malformed_list_page_is_malformed(
    emulator: EmulatorServer, remote: OpenAIService, body: str, field: str
) -> None:
    batch = _batch(emulator)
    _reply(emulator, "GET", "/batches", body)
    with _raises("batches.list", field):
        remote.list_batches(0.0, {batch["id"]})


def test_a_listing_that_repeats_its_page_ends(emulator: EmulatorServer, remote: OpenAIService) -> None:
    page = {"object": "list", "data": [FILE_OK], "has_more": True}
    _reply(emulator, "GET", "/files", json.dumps(page), count=5)
    with _raises("files.list", "repeats a page"):
        remote.find_file("missing.jsonl", 0.0)


def test_a_malformed_listed_batch_is_skipped_and_the_others_listed(
    emulator: EmulatorServer, remote: OpenAIService
) -> None:
    good, bad = _batch(emulator), _batch(emulator)
    garbled = [{**bad, "status": 9}, {**bad, "id": [bad["id"]]}, 5, "x", None]
    page = {"object": "list", "data": [*garbled, good], "has_more": False}
    _reply(emulator, "GET", "/batches", json.dumps(page))
    seen = remote.list_batches(0.0, {good["id"], bad["id"]})
    assert set(seen) == {good["id"]}, "the malformed one is left for the caller to retrieve"


def test_reconcile_never_skips_a_listed_batch_that_may_be_ours(emulator: EmulatorServer, remote: OpenAIService) -> None:
    theirs, ours = _batch(emulator, "them"), _batch(emulator, "us")
    page = {"object": "list", "data": [{**theirs, "status": 9}, ours], "has_more": False}
    _reply(emulator, "GET", "/batches", json.dumps(page))
    assert [b.id for b in remote.find_batches({"owner": "us"}, 0.0)] == [ours["id"]]  # theirs, readably
    unreadable = {"object": "list", "data": [{**theirs, "metadata": "us"}, ours], "has_more": False}
    _reply(emulator, "GET", "/batches", json.dumps(unreadable))
    with _raises("batches.list", "metadata"):
        remote.find_batches({"owner": "us"}, 0.0)
    _reply(emulator, "GET", "/batches", json.dumps({**unreadable, "data": [{**ours, "created_at": None}]}))
    with _raises("batches.list", "created_at"):
        remote.find_batches({"owner": "us"}, 0.0)


def test_reply_rule_is_settable_over_http_and_validated(emulator: EmulatorServer, remote: OpenAIService) -> None:
    rule = {"action": "reply", "method": "GET", "path_prefix": "/batches", "body": "[1]", "content_type": "text/plain"}
    with httpx2.Client() as http:
        applied = http.post(f"{emulator.url}/_emulator/faults", json={"rules": [rule]}).json()
        assert applied["rules"][0]["status"] == 200
        refused = http.post(f"{emulator.url}/_emulator/faults", json={"rules": [{**rule, "body": 5}]})
        assert refused.status_code == 400
    with _raises("batches.list", "could not be read"):
        remote.list_batches(0.0, {"batch_x"})
    with pytest.raises(ValueError, match="content_type"):
        FaultRule(action="reply", content_type="text/html\r\nX-Evil: 1")
    assert FaultRule(action="reply", status=503).status == 503
    assert FaultRule(action="status").status == 500


def test_random_malformed_replies_are_bounded_and_spare_downloads(
    emulator: EmulatorServer, remote: OpenAIService
) -> None:
    batch = _batch(emulator)
    with httpx2.Client() as http:
        for bad in ({"reply_rate": 1.5}, {"reply_rate": "all"}, {"reply_count": -1}, {"reply_count": True}):
            assert http.post(f"{emulator.url}/_emulator/faults", json=bad).status_code == 400
        applied = http.post(f"{emulator.url}/_emulator/faults", json={"reply_rate": 1.0, "reply_count": 2}).json()
    assert (applied["reply_rate"], applied["reply_count"]) == (1.0, 2)
    with remote.client.files.with_streaming_response.content(batch["input_file_id"]) as download:
        assert b"custom_id" in download.read(), "a download is never garbled by the rate"
    for _ in range(2):
        with _raises("batches.retrieve", ""):
            remote.retrieve(batch["id"])
    assert remote.retrieve(batch["id"]).id == batch["id"], "spent after reply_count garbled replies"
    assert emulator.faults.fired == 2
    emulator.faults.set_reply_rate(1.0)
    emulator.faults.clear()
    assert emulator.faults.snapshot()["reply_rate"] == 0.0


def test_a_malformed_listed_file_is_skipped_even_under_our_name(
    emulator: EmulatorServer, remote: OpenAIService
) -> None:
    ours = {**FILE_OK, "id": "file-ours", "filename": "ours.jsonl"}
    page = {"object": "list", "data": [{**ours, "id": 5}, 7, {**FILE_OK, "filename": None}, ours], "has_more": False}
    _reply(emulator, "GET", "/files", json.dumps(page))
    with capture_logs() as logs:
        assert remote.find_file("ours.jsonl", 0.0) == "file-ours"
    assert [e["event"] for e in logs] == ["listed_file_skipped"] * 3
    assert "files.list: id is not a valid id" in logs[0]["error"]
    _reply(emulator, "GET", "/files", json.dumps({**page, "data": [{**ours, "id": "file-ours/.."}]}))
    assert remote.find_file("ours.jsonl", 0.0) is None, "uploaded again: a second file costs nothing"
