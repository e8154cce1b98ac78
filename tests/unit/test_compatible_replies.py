"""What compatible services send, read at the seam: upper-case statuses, ISO 8601 times, and the
capabilities a profile lacks never sent (through the real SDK, replies shaped at the emulator)."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer
from daemon.emulator.params import BatchParams, UploadParams
from daemon.errors import ConfigError, MalformedReplyError, PermanentError
from daemon.providers import Profile
from daemon.results.body_form import copy_result_line
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.reply_checks import epoch_seconds
from tests.support import TEST_KEY

ENDPOINT = "/v1/chat/completions"
NO_CAPABILITIES = Profile(supports_metadata=False, supports_list=False, supports_cancel=False, supports_expiry=False)


@contextmanager
def service(emulator: EmulatorServer, profile: Profile) -> Iterator[OpenAIService]:
    remote = OpenAIService.for_profile(
        dataclasses.replace(profile, base_url=emulator.base_url), KeySource("test key", value=TEST_KEY), 10.0
    )
    try:
        yield remote
    finally:
        remote.close()


@pytest.fixture
def remote(emulator: EmulatorServer) -> Iterator[OpenAIService]:
    with service(emulator, Profile()) as client:
        yield client


def stored_batch(emulator: EmulatorServer) -> dict[str, Any]:
    """A batch straight in the emulator's store (no API call), as OpenAI would return it."""
    staged = emulator.store.staging_path()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    staged.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": ENDPOINT, "body": body}) + "\n")
    upload = emulator.store.add_upload(staged, "in.jsonl", UploadParams("batch", None))
    created = emulator.store.create_batch(BatchParams(upload["id"], ENDPOINT, "24h", None, None))
    return next(b for b in emulator.batches() if b["id"] == created["id"])


def served_as(emulator: EmulatorServer, batch: dict[str, Any], **change: Any) -> None:
    """The next GET of the batch answered with ``change`` applied."""
    changed = json.dumps({**batch, **change})
    emulator.faults.add_rule(action="reply", method="GET", path_prefix=f"/v1/batches/{batch['id']}", body=changed)


def listed_as(emulator: EmulatorServer, batch: dict[str, Any], **change: Any) -> None:
    """The next listing of batches holding only ``batch``, with ``change`` applied."""
    listing = json.dumps({"object": "list", "data": [{**batch, **change}], "has_more": False})
    emulator.faults.add_rule(action="reply", method="GET", path_prefix="/v1/batches", body=listing)


@pytest.mark.parametrize(
    ("sent", "read"),
    [("COMPLETED", "completed"), ("IN_PROGRESS", "in_progress"), ("Cancelling", "cancelling"), ("failed", "failed")],
)
def test_a_known_status_in_any_case_reads_as_openai_writes_it(
    emulator: EmulatorServer, remote: OpenAIService, sent: str, read: str
) -> None:
    batch = stored_batch(emulator)
    served_as(emulator, batch, status=sent)
    assert remote.retrieve(batch["id"]).status == read


def test_an_unknown_upper_case_status_stays_malformed(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = stored_batch(emulator)
    served_as(emulator, batch, status="QUEUED")
    with pytest.raises(MalformedReplyError, match=r"^malformed reply to batches\.retrieve: status"):
        remote.retrieve(batch["id"])


def test_iso_times_read_as_epoch_seconds(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = stored_batch(emulator)
    times = {"created_at": "2023-11-14T22:13:20Z", "in_progress_at": "2023-11-14T23:13:21+01:00"}
    served_as(emulator, batch, **times, completed_at="2023-11-14T22:13:25.5", status="COMPLETED")
    read = remote.retrieve(batch["id"])
    assert (read.created_at, read.in_progress_at, read.completed_at) == (1_700_000_000, 1_700_000_001, 1_700_000_005)
    assert read.status == "completed" and read.cancelled_at is None


def test_listed_batches_are_read_the_same_way(emulator: EmulatorServer, remote: OpenAIService) -> None:
    batch = stored_batch(emulator)
    listed_as(emulator, batch, status="VALIDATING", created_at="2023-11-14T22:13:20Z")
    listed = remote.batches_since(0.0)
    assert [(b.id, b.status, b.created_at) for b in listed] == [(batch["id"], "validating", 1_700_000_000)]


@pytest.mark.parametrize("sent", ["2026-01-01", "yesterday", "2023-11-14T22:13:20 UTC", "14/11/2023 22:13"])
def test_a_time_that_names_no_moment_stays_malformed(
    emulator: EmulatorServer, remote: OpenAIService, sent: str
) -> None:
    batch = stored_batch(emulator)
    served_as(emulator, batch, completed_at=sent)
    with pytest.raises(MalformedReplyError, match="completed_at"):
        remote.retrieve(batch["id"])


def test_a_file_created_at_in_iso_reads_as_seconds(
    emulator: EmulatorServer, remote: OpenAIService, tmp_path: Path
) -> None:
    file = {"id": "file-iso", "object": "file", "bytes": 3, "filename": "in.jsonl", "purpose": "batch"}
    reply = json.dumps({**file, "created_at": "2023-11-14T22:13:20Z"})
    emulator.faults.add_rule(action="reply", method="POST", path_prefix="/v1/files", body=reply)
    source = tmp_path / "in.jsonl"
    source.write_text('{"custom_id": "r0"}\n')
    assert remote.upload(source, "in.jsonl") == "file-iso"
    listing = {"object": "list", "data": [{**file, "created_at": "2023-11-14T22:13:20Z"}], "has_more": False}
    emulator.faults.add_rule(action="reply", method="GET", path_prefix="/v1/files", body=json.dumps(listing))
    assert [(f.id, f.created_at) for f in remote.uploads_since(0.0, "in")] == [("file-iso", 1_700_000_000)]


def test_epoch_seconds_of_iso_forms() -> None:
    assert epoch_seconds("2023-11-14T22:13:20Z") == 1_700_000_000
    assert epoch_seconds("2023-11-14 22:13:20") == 1_700_000_000  # no offset: UTC
    assert epoch_seconds("2023-11-15T00:13:20+0200") == 1_700_000_000
    assert epoch_seconds("2023-11-14") is None
    assert epoch_seconds("1700000000") is None


def test_metadata_is_not_sent_when_the_profile_lacks_it(emulator: EmulatorServer) -> None:
    """The plain emulator keeps metadata when sent: here none arrives. (Expiry: see the integration
    test of the compatible profile, which reads it from the output file's lifetime.)"""
    batch = stored_batch(emulator)
    with service(emulator, NO_CAPABILITIES) as bare, service(emulator, Profile()) as full:
        kept = full.create_batch(batch["input_file_id"], ENDPOINT, "24h", {"batchd_part": "0.0"}, 3600)
        dropped = bare.create_batch(batch["input_file_id"], ENDPOINT, "24h", {"batchd_part": "0.0"}, 3600)
        stored = {b["id"]: b["metadata"] for b in emulator.batches()}
    assert (kept.metadata, stored[kept.id]) == ({"batchd_part": "0.0"}, {"batchd_part": "0.0"})
    assert (dropped.metadata, stored[dropped.id]) == (None, None)


def test_cancel_is_refused_without_a_call_when_the_profile_cannot(emulator: EmulatorServer) -> None:
    batch = stored_batch(emulator)
    with service(emulator, NO_CAPABILITIES) as bare, pytest.raises(PermanentError, match="supports_cancel = false"):
        bare.cancel(batch["id"])
    assert emulator.calls.count("POST", "/v1/batches/{batch_id}/cancel") == 0
    assert emulator.batches()[0]["status"] != "cancelling"


def copied(line: dict[str, Any] | bytes, normalise: bool, names: dict[str, str] | None = None) -> bytes:
    raw = line if isinstance(line, bytes) else orjson.dumps(line) + b"\n"
    out = io.BytesIO()
    copy_result_line(io.BytesIO(b"\n" + raw), 1, out, normalise, names or {})
    return out.getvalue()


def test_a_string_body_is_decoded_then_its_deployment_named_back_when_both_are_asked() -> None:
    body = {"id": "chatcmpl-1", "model": "my-deployment", "usage": {"total_tokens": 7}}
    line = {"custom_id": "r0", "response": {"status_code": 200, "body": json.dumps(body)}, "error": None}
    names = {"my-deployment": "gpt-4o-mini"}
    written = orjson.loads(copied(line, normalise=True, names=names))
    assert written["response"]["body"] == {**body, "model": "gpt-4o-mini"}
    # Not decoded, the string body cannot be edited in place: kept as the service sent it.
    assert copied(line, normalise=False, names=names) == orjson.dumps(line) + b"\n"


def test_a_string_body_is_decoded_only_when_asked(tmp_path: Path) -> None:
    body = {"id": "chatcmpl-1", "usage": {"total_tokens": 7}}
    line = {"custom_id": "r0", "response": {"status_code": 200, "body": json.dumps(body)}, "error": None}
    assert orjson.loads(copied(line, normalise=True))["response"]["body"] == body
    assert copied(line, normalise=False) == orjson.dumps(line) + b"\n"


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps({"custom_id": "r0", "response": {"body": {"usage": {}}}}) + b"\n",  # already an object
        orjson.dumps({"custom_id": "r0", "response": {"body": "not json"}}) + b"\n",
        orjson.dumps({"custom_id": "r0", "response": {"body": "[1, 2]"}}) + b"\n",  # JSON, but no object
        orjson.dumps({"custom_id": "r0", "response": None, "error": {"code": "x"}}) + b"\n",
        b'{"custom_id": "r0",  "response": {"body": {}}}\n',  # spacing the service chose is kept
        b"not a json line\n",
    ],
)
def test_other_lines_are_copied_as_they_came(raw: bytes) -> None:
    assert copied(raw, normalise=True) == raw


def test_normalise_bodies_is_off_by_default_and_read_from_file_or_environment(tmp_path: Path) -> None:
    toml = tmp_path / "batchd.toml"
    toml.write_text("normalise_bodies = true\n")
    assert load_settings(environ={}, overrides={"root": tmp_path}).normalise_bodies is False
    assert load_settings(toml, environ={}, overrides={"root": tmp_path}).normalise_bodies is True
    env = {"BATCHD_NORMALISE_BODIES": "false"}
    assert load_settings(toml, environ=env, overrides={"root": tmp_path}).normalise_bodies is False
    with pytest.raises(ConfigError, match="normalise_bodies"):
        load_settings(environ={"BATCHD_NORMALISE_BODIES": "maybe"}, overrides={"root": tmp_path})
