"""on_job_done: a signed POST to a receiver and a command with the job in its environment, retried,
never lost to a restart."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.config import Settings
from daemon.emulator import EmulatorServer
from daemon.errors import CredentialError
from daemon.ops.job_notifications import job_notifications
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.support import TEST_KEY, Harness, request_file, wait_until

SECRET = "notify-secret-for-tests"
BAD = '{"model": "gpt-4o-mini", "messages": []}\n'
# Writes its environment, one JSON object a line, to the file named by its argument.
WRITE_ENV = "import json, os, sys; open(sys.argv[1], 'a').write(json.dumps(dict(os.environ)) + '\\n')"


class Receiver:
    """A loopback HTTP server that keeps what was POSTed; answers ``failures`` 500s first."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures = failures
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    failing = outer.failures > 0
                    outer.failures -= failing
                    if not failing:
                        outer.received.append((dict(self.headers.items()), body))
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHD_NOTIFY_SECRET", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)  # in the daemon's environment: never the hook's


def _verified(headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["X-Batchd-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(stamp)) < 300
    return fresh and hmac.compare_digest(headers["X-Batchd-Signature"], f"sha256={expected}")


def test_a_receiver_and_a_command_are_told_of_each_ending(
    harness_factory: Callable[..., Harness], receiver: Receiver, tmp_path: Path
) -> None:
    env_file = tmp_path / "hook-env.jsonl"
    harness = harness_factory(
        on_job_done_url=receiver.url, on_job_done_command=(sys.executable, "-c", WRITE_ENV, str(env_file))
    ).start()
    with capture_logs() as captured:
        harness.drop("good.jsonl", request_file(3))
        harness.drop("bad.jsonl", BAD)
        harness.drop("errs.jsonl", request_file(2, model="gpt-fail-all"))
        wait_until(lambda: len(receiver.bodies()) == 3, what="three notifications")
        wait_until(lambda: env_file.exists() and len(env_file.read_text().splitlines()) == 3, what="three runs")
    bodies = {b["file"]: b for b in receiver.bodies()}
    assert {name: b["event"] for name, b in bodies.items()} == {
        "good.jsonl": "done",
        "bad.jsonl": "failed",
        "errs.jsonl": "needs_attention",
    }
    good = harness.job("good.jsonl")
    assert good is not None and good.state == JobState.DONE
    assert (bodies["good.jsonl"]["job_id"], bodies["good.jsonl"]["succeeded"]) == (good.id, 3)
    assert bodies["errs.jsonl"]["failed"] == 2
    for headers, body in receiver.received:
        assert _verified(headers, body), "signed with the secret, over the timestamp and the body"
        assert headers["X-Batchd-Delivery"] == f"{json.loads(body)['job_id']}:{json.loads(body)['event']}"
    runs = {e["BATCHD_FILE"]: e for e in map(json.loads, env_file.read_text().splitlines())}
    assert runs["good.jsonl"]["BATCHD_JOB_ID"] == good.id
    assert runs["good.jsonl"]["BATCHD_EVENT"] == "done" and runs["good.jsonl"]["BATCHD_SUCCEEDED"] == "3"
    assert runs["bad.jsonl"]["BATCHD_STATE"] == "rejected"
    assert not any("OPENAI_API_KEY" in e or "BATCHD_NOTIFY_SECRET" in e for e in runs.values()), "no secret"
    sent = [e for e in captured if e["event"] == "notification_sent"]
    assert sorted((e["to"], e["ending"]) for e in sent) == sorted(
        (to, ending) for to in ("command", "url") for ending in ("done", "failed", "needs_attention")
    )
    assert SECRET not in json.dumps([str(e) for e in captured])
    assert harness.store is not None and harness.store.owed_notices(10) == [], "nothing left owed"


def test_a_failing_receiver_is_tried_again(harness_factory: Callable[..., Harness]) -> None:
    receiver = Receiver(failures=2)
    try:
        harness = harness_factory(on_job_done_url=receiver.url, on_job_done_events=frozenset({"done"})).start()
        with capture_logs() as captured:
            harness.drop("good.jsonl", request_file(1))
            harness.drop("bad.jsonl", BAD)  # failed: not asked for, never sent
            wait_until(lambda: receiver.bodies(), timeout=30, what="a delivery after two 500s")
            harness.wait_job("bad.jsonl", JobState.REJECTED)
            assert harness.store is not None
            wait_until(lambda: harness.store is not None and harness.store.owed_notices(10) == [], what="none owed")
        assert [b["file"] for b in receiver.bodies()] == ["good.jsonl"]
        [sent] = [e for e in captured if e["event"] == "notification_sent"]
        assert sent["attempts"] == 3
    finally:
        receiver.close()


def test_a_notification_owed_at_a_stop_is_delivered_after_the_restart(
    harness_factory: Callable[..., Harness], receiver: Receiver, emulator: EmulatorServer
) -> None:
    down = Receiver(failures=1000)  # answers 500 to everything
    try:
        first = harness_factory(on_job_done_url=down.url).start()
        first.drop("good.jsonl", request_file(1))
        first.wait_job("good.jsonl")
        assert first.store is not None
        wait_until(lambda: down.failures < 1000, what="a first, failed, attempt")
        first.stop()
    finally:
        down.close()
    again = harness_factory(on_job_done_url=receiver.url).start()
    wait_until(lambda: receiver.bodies(), timeout=20, what="the owed notification")
    assert [b["file"] for b in receiver.bodies()] == ["good.jsonl"]
    assert len(emulator.batches()) == 1
    assert again.store is not None
    wait_until(lambda: again.store is not None and again.store.owed_notices(10) == [], what="none owed")


def test_a_url_without_a_secret_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BATCHD_NOTIFY_SECRET")
    store = Store(tmp_path / "state.sqlite3")
    try:
        settings = Settings(root=tmp_path, on_job_done_url="http://127.0.0.1:9/hook")
        with pytest.raises(CredentialError, match="BATCHD_NOTIFY_SECRET_FILE"):
            job_notifications(settings, store, threading.Event())
        assert job_notifications(Settings(root=tmp_path), store, threading.Event()) is None, "off: nothing to do"
    finally:
        store.close()
