"""The webhook receiver: deliveries signed here, independently of the SDK, per Standard Webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from structlog.testing import capture_logs

from daemon.config import Settings, load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import CredentialError
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.webhooks import WebhookReceiver, WebhookServer, webhook_server
from daemon.state.states import JobState, PartState
from tests.support import Harness, azure_profile, fast_settings, request_file, wait_until

SECRET = "whsec_" + base64.b64encode(b"batchd-test-signing-key-32-bytes").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-entirely-32-bytes!").decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature: HMAC-SHA256 over "id.timestamp.body", base64, prefixed v1,."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def event(batch_id: str, kind: str = "batch.completed") -> bytes:
    payload = {"id": f"evt_{secrets.token_hex(8)}", "object": "event", "type": kind, "created_at": int(time.time())}
    return json.dumps({**payload, "data": {"id": batch_id}}).encode()


def deliver(
    port: int,
    body: bytes,
    *,
    webhook_id: str | None = None,
    secret: str = SECRET,
    timestamp: int | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
    stamp = int(time.time()) if timestamp is None else timestamp
    sent = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature or sign(secret, webhook_id, stamp, body),
        "Content-Type": "application/json",
    }
    if headers is not None:
        sent = headers
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks", data=body, headers=sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


class Recorder:
    """Stands in for the poller: records which batches it was asked to refresh."""

    def __init__(self, answer: str = "queued") -> None:
        self.asked: list[str] = []
        self.answer = answer

    def __call__(self, batch_id: str) -> str:
        self.asked.append(batch_id)
        return self.answer


@pytest.fixture(name="receiver")
def receiver_fixture(tmp_path: Path) -> Iterator[tuple[WebhookServer, Recorder]]:
    recorder = Recorder()
    client = OpenAIService(openai.OpenAI(api_key="unused-here", max_retries=0))  # only unwrap_webhook is used
    receiver = WebhookReceiver(client, KeySource("test secret", value=SECRET, what="webhook signing secret"), recorder)
    server = WebhookServer(Settings(root=tmp_path, webhook_port=0), receiver)
    server.start()
    yield server, recorder
    server.stop()
    client.close()


def test_a_signed_delivery_asks_for_that_batch(receiver: tuple[WebhookServer, Recorder]) -> None:
    server, recorder = receiver
    for kind in ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled"):
        assert deliver(server.port, event(f"batch_{kind}", kind)) == (200, {"status": "queued"})
    assert recorder.asked == [
        "batch_batch.completed",
        "batch_batch.failed",
        "batch_batch.expired",
        "batch_batch.cancelled",
    ]


def test_forged_tampered_and_stale_deliveries_are_refused(receiver: tuple[WebhookServer, Recorder]) -> None:
    server, recorder = receiver
    body = event("batch_1")
    now = int(time.time())
    good_for_other_body = sign(SECRET, "msg_t", now, event("batch_2"))
    refused = [
        deliver(server.port, body, secret=OTHER_SECRET),  # signed with somebody else's secret
        deliver(server.port, body, webhook_id="msg_t", signature=good_for_other_body),  # body swapped
        deliver(server.port, body, timestamp=now - 600),  # correctly signed, 10 minutes old
        deliver(server.port, body, timestamp=now + 600),  # from the future
        deliver(server.port, body, signature="v1,bm90IGEgc2lnbmF0dXJl"),
        deliver(server.port, body, headers={"Content-Type": "application/json"}),  # no signature headers
    ]
    assert refused == [(400, {"status": "rejected"})] * len(refused)
    assert recorder.asked == []


def test_replays_are_acknowledged_but_not_acted_on(receiver: tuple[WebhookServer, Recorder]) -> None:
    server, recorder = receiver
    body = event("batch_r")
    now = int(time.time())
    # A forgery carrying a genuine id first: it must not make the genuine delivery look like a replay.
    assert deliver(server.port, body, webhook_id="msg_same", secret=OTHER_SECRET, timestamp=now)[0] == 400
    assert deliver(server.port, body, webhook_id="msg_same", timestamp=now) == (200, {"status": "queued"})
    assert deliver(server.port, body, webhook_id="msg_same", timestamp=now) == (200, {"status": "duplicate"})
    assert deliver(server.port, body, webhook_id="msg_same", timestamp=now + 5) == (200, {"status": "duplicate"})
    assert recorder.asked == ["batch_r"]


def test_rotated_secrets_and_other_events(receiver: tuple[WebhookServer, Recorder]) -> None:
    server, recorder = receiver
    body = event("batch_rot")
    now = int(time.time())
    both = f"{sign(OTHER_SECRET, 'msg_rot', now, body)} {sign(SECRET, 'msg_rot', now, body)}"
    assert deliver(server.port, body, webhook_id="msg_rot", timestamp=now, signature=both)[0] == 200
    assert deliver(server.port, event("resp_1", "response.completed")) == (200, {"status": "ignored"})
    assert recorder.asked == ["batch_rot"]


def test_unknown_batches_are_logged_and_the_secret_never(tmp_path: Path) -> None:
    recorder = Recorder(answer="unknown")
    client = OpenAIService(openai.OpenAI(api_key="unused-here", max_retries=0))
    receiver = WebhookReceiver(client, KeySource("test secret", value=SECRET), recorder)
    server = WebhookServer(Settings(root=tmp_path, webhook_port=0), receiver)
    with capture_logs() as captured:
        server.start()
        try:
            assert deliver(server.port, event("batch_nobody_knows")) == (200, {"status": "unknown"})
            assert deliver(server.port, event("batch_x"), secret=OTHER_SECRET)[0] == 400
        finally:
            server.stop()
            client.close()
    assert [e["batch_id"] for e in captured if e["event"] == "webhook_batch_unknown"] == ["batch_nobody_knows"]
    assert any(e["event"] == "webhook_rejected" for e in captured)
    assert SECRET not in repr(captured) and SECRET.removeprefix("whsec_") not in repr(captured)


def test_only_posts_of_a_sane_size(receiver: tuple[WebhookServer, Recorder]) -> None:
    server, _ = receiver
    with pytest.raises(urllib.error.HTTPError) as got:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
    got.value.close()
    assert got.value.code == 405
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest("POST", "/webhooks")
        conn.putheader("Content-Length", str(2 << 20))  # announced, never sent: refused before reading
        conn.endheaders()
        assert conn.getresponse().status == 413
    finally:
        conn.close()


# Through the real daemon -------------------------------------------------------------------------


@pytest.fixture(name="emulator")
def quick_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    timing = EmulatorSettings(
        validating_seconds=0.05, in_progress_seconds=0.2, finalizing_seconds=0.05, data_dir=tmp_path / "emulator"
    )
    with EmulatorServer(timing) as server:
        yield server


def test_a_webhook_collects_a_batch_long_before_its_next_poll(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    # The first status check would come after 10 minutes: only the webhook can finish this job in time.
    harness = harness_factory(webhook_port=0, first_poll_after=600.0, poll_interval=600.0).start()
    assert harness.engine is not None and harness.engine.webhooks is not None
    port = harness.engine.webhooks.port
    harness.drop("hooked.jsonl", request_file(4))
    job = harness.wait_job("hooked.jsonl", JobState.ACTIVE)
    assert harness.store is not None
    part = wait_until(lambda: next(iter(p for p in harness.store.parts(job.id) if p.batch_id), None), 10)  # type: ignore[union-attr]
    wait_until(lambda: emulator.batches()[0]["status"] == "completed", 10, "the emulator to finish the batch")
    assert harness.store.part(part.id).state == PartState.SUBMITTED  # finished remotely, not yet known here
    assert deliver(port, event("batch_unknown_to_batchd")) == (200, {"status": "unknown"})
    started = time.monotonic()
    assert deliver(port, event(part.batch_id)) == (200, {"status": "queued"})
    harness.wait_job("hooked.jsonl", timeout=10)
    assert time.monotonic() - started < 5
    assert [r["custom_id"] for r in harness.results("hooked.jsonl")] == ["r0", "r1", "r2", "r3"]
    # Once finished, a late delivery for the same batch changes nothing.
    assert deliver(port, event(part.batch_id, "batch.completed")) == (200, {"status": "finished"})


def test_webhook_port_without_a_secret_stops_the_start(
    harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OPENAI_WEBHOOK_SECRET", "OPENAI_WEBHOOK_SECRET_FILE", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    harness = harness_factory(webhook_port=0)
    with pytest.raises(CredentialError, match="OPENAI_WEBHOOK_SECRET"):
        harness.start()
    assert harness.lock is not None
    harness.lock.release()
    assert harness.store is not None and harness.remote is not None
    harness.store.close()
    harness.remote.close()


# Where the secret comes from -------------------------------------------------------------------


def test_a_delivery_is_verified_with_the_secret_of_its_batchs_profile(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The azure profile names its own signing secret: a delivery about its batch is verified with
    that one (the default profile's secret no longer passes for it), and acted on."""
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AZURE_HOOK_SECRET", OTHER_SECRET)
    root = tmp_path / "root"
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(azure_profile(azure_server.base_url, 'webhook_secret_env = "AZURE_HOOK_SECRET"\n'))
    providers = load_settings(config, environ={}).providers
    settings = fast_settings(
        root, openai_server.base_url, providers=providers, webhook_port=0, first_poll_after=600.0, poll_interval=600.0
    )
    harness = Harness(settings, openai_server).start()
    try:
        assert harness.engine is not None and harness.engine.webhooks is not None
        port = harness.engine.webhooks.port
        harness.drop("hooked.jsonl", request_file(2, model="gpt-4o-mini-batch"), "azure")
        job = harness.profile_job("azure", JobState.ACTIVE)
        assert harness.store is not None
        store = harness.store
        part = wait_until(lambda: next(iter(p for p in store.parts(job.id) if p.batch_id), None), 10)
        wait_until(lambda: azure_server.batches()[0]["status"] == "completed", 10, "the batch to finish remotely")
        assert deliver(port, event(part.batch_id), secret=SECRET) == (400, {"status": "rejected"})
        assert deliver(port, event(part.batch_id), secret=OTHER_SECRET) == (200, {"status": "queued"})
        harness.profile_job("azure", JobState.DONE, timeout=10)
        assert deliver(port, event("batch_unknown_here"), secret=SECRET) == (200, {"status": "unknown"})
    finally:
        harness.stop()


def test_a_profile_naming_a_secret_that_is_not_set_stops_the_start(
    tmp_path: Path, openai_server: EmulatorServer, azure_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    monkeypatch.delenv("AZURE_HOOK_SECRET", raising=False)
    config = tmp_path / "batchd.toml"
    config.write_text(azure_profile(azure_server.base_url, 'webhook_secret_env = "AZURE_HOOK_SECRET"\n'))
    providers = load_settings(config, environ={}).providers
    with pytest.raises(CredentialError, match=r"no webhook signing secret for provider profile azure: set \$AZURE"):
        webhook_server(Settings(root=tmp_path, webhook_port=0, providers=providers), None, Recorder())  # type: ignore[arg-type]


DEFAULT_ENV = ("OPENAI_WEBHOOK_SECRET", "OPENAI_WEBHOOK_SECRET_FILE", "CREDENTIALS_DIRECTORY")
OWN_DEFAULT = '[providers.default]\nkind = "openai"\nwebhook_secret_env = "DEFAULT_HOOK_SECRET"\n'
ANTHROPIC = '[providers.claude]\nkind = "anthropic"\n'  # its service sends no webhooks: it needs no secret


def _signed(body: bytes, secret: str) -> dict[str, str]:
    webhook_id, stamp = f"msg_{secrets.token_hex(8)}", int(time.time())
    signature = sign(secret, webhook_id, stamp, body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def _profiles_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, **secret_env: str) -> Settings:
    """Settings with the profiles of ``toml`` and only the secrets in ``secret_env`` set (none of the default's)."""
    for name in DEFAULT_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in secret_env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "batchd.toml"
    config.write_text(toml)
    return Settings(root=tmp_path, webhook_port=0, providers=load_settings(config, environ={}).providers)


def test_no_default_secret_is_needed_when_every_profile_names_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_azure = azure_profile("http://127.0.0.1:9", 'webhook_secret_env = "AZURE_HOOK_SECRET"\n')
    toml = OWN_DEFAULT + own_azure + ANTHROPIC
    settings = _profiles_settings(
        tmp_path, monkeypatch, toml, DEFAULT_HOOK_SECRET=SECRET, AZURE_HOOK_SECRET=OTHER_SECRET
    )
    service = OpenAIService(openai.OpenAI(api_key="unused-here", max_retries=0))  # only unwrap_webhook is used
    try:
        server = webhook_server(settings, service, Recorder())
        assert server is not None and server.receiver.secret is None
        body = event("batch_of_the_default_profile")
        assert server.receiver.handle(body, _signed(body, SECRET)) == (200, "queued")
        assert server.receiver.handle(body, _signed(body, OTHER_SECRET)) == (400, "rejected")  # azure's: not its
    finally:
        service.close()


def test_without_a_default_profile_that_gets_webhooks_any_own_secret_verifies_an_unknown_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_azure = azure_profile("http://127.0.0.1:9", 'webhook_secret_env = "AZURE_HOOK_SECRET"\n')
    toml = '[providers.default]\nkind = "anthropic"\n' + own_azure
    settings = _profiles_settings(tmp_path, monkeypatch, toml, AZURE_HOOK_SECRET=OTHER_SECRET)
    service = OpenAIService(openai.OpenAI(api_key="unused-here", max_retries=0))
    try:
        server = webhook_server(settings, service, Recorder())
        assert server is not None
        body = event("batch_not_in_the_state")
        assert server.receiver.handle(body, _signed(body, OTHER_SECRET)) == (200, "queued")
        assert server.receiver.handle(body, _signed(body, SECRET)) == (400, "rejected")
    finally:
        service.close()


def test_the_default_secret_is_required_while_a_profile_relies_on_it_and_the_error_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = OWN_DEFAULT + azure_profile("http://127.0.0.1:9") + ANTHROPIC
    settings = _profiles_settings(tmp_path, monkeypatch, toml, DEFAULT_HOOK_SECRET=SECRET)
    with pytest.raises(CredentialError) as caught:
        webhook_server(settings, None, Recorder())  # type: ignore[arg-type]
    message = str(caught.value)
    assert "OPENAI_WEBHOOK_SECRET" in message and "give [providers.azure] a secret of its own" in message
    assert "webhook_secret_env" in message and "claude" not in message
