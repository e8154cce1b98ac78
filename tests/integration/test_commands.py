"""Operators' commands go through the running daemon, which holds the key: the CLI needs none."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cli.command_sender import user_name
from daemon.cli.main import main
from daemon.emulator import EmulatorServer
from daemon.ops.command_queue import (
    OUTCOME_SUFFIX,
    command_outcome,
    daemon_presence,
    request_command,
    spool_folder,
)
from daemon.state.command_queries import DONE, REFUSED
from daemon.state.states import JobState
from tests.support import TEST_KEY, Harness, request_file, wait_until


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's shell has no key: only the daemon (the harness) holds one."""
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEY_FILE", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("daemon.cli.main.configure", lambda *_: None)


def _running_batch(harness: Harness, emulator: EmulatorServer, name: str) -> None:
    emulator.mishaps.never_end_next(1)
    harness.drop(name, request_file(2))
    wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "in_progress", what="a batch")


def test_cancel_goes_through_the_daemon_which_holds_the_key(
    harness: Harness, emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _running_batch(harness, emulator, "run.jsonl")
    assert daemon_presence(harness.settings.root) is True
    with capture_logs() as captured:
        assert main(["cancel", "run.jsonl", "--root", str(harness.settings.root)]) == 0
    out = capsys.readouterr().out
    batch_id = emulator.batches()[0]["id"]
    assert f"run.jsonl: batch {batch_id} is cancelling" in out
    job = harness.wait_job("run.jsonl", JobState.DONE)
    assert job.cancel_requested
    assert [b["status"] for b in emulator.batches()] == ["cancelled"]
    assert harness.store is not None
    [command] = harness.store.recent_commands()
    assert (command.kind, command.target, command.state) == ("cancel", "run.jsonl", DONE)
    assert command.requested_by == user_name() and command.done_at is not None
    assert batch_id in (command.result or "")
    done = [e for e in captured if e["event"] == "command_done"]
    assert [e["command_id"] for e in done] == [command.id]
    assert not list(spool_folder(harness.settings.root).glob(f"*{OUTCOME_SUFFIX}")), "the CLI took its outcome"


def test_a_command_for_an_unknown_job_is_refused_with_the_reason(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cancel", "nothing-such.jsonl", "--root", str(harness.settings.root)]) == 1
    assert "no open job for 'nothing-such.jsonl'" in capsys.readouterr().out
    assert main(["retry", "nothing-such.jsonl", "--root", str(harness.settings.root)]) == 1
    assert "batchd: retry refused: no input called 'nothing-such.jsonl'" in capsys.readouterr().err
    assert harness.store is not None
    states = {(c.kind, c.state) for c in harness.store.recent_commands()}
    assert states == {("cancel", REFUSED), ("retry", REFUSED)}


def test_without_a_daemon_or_a_key_the_command_says_what_to_do(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory().start()
    _running_batch(harness, emulator, "run.jsonl")
    harness.stop()
    assert daemon_presence(harness.settings.root) is False
    assert main(["cancel", "run.jsonl", "--root", str(harness.settings.root)]) == 1
    err = capsys.readouterr().err
    assert "no daemon runs on" in err and "there is no key to do it here" in err
    assert "batchd run --emulator" in err
    assert [b["status"] for b in emulator.batches()] == ["in_progress"], "nothing was cancelled"


def test_without_a_daemon_a_command_with_a_key_acts_directly(
    harness_factory: Callable[..., Harness],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    harness = harness_factory().start()
    _running_batch(harness, emulator, "run.jsonl")
    harness.stop()
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
    assert main(["cancel", "run.jsonl", "--root", str(harness.settings.root)]) == 0
    captured = capsys.readouterr()
    assert "no daemon runs on" in captured.err and "carrying out the cancel here" in captured.err
    assert [b["status"] for b in emulator.batches()] in (["cancelling"], ["cancelled"])


def test_a_request_nobody_takes_is_withdrawn_after_the_timeout(
    harness_factory: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory()
    harness.commands = None  # a daemon that takes no commands: the CLI acts directly, as before
    harness.start()
    spool_folder(harness.settings.root).mkdir()
    # A presence lock held by someone, no daemon reading the folder: the request must not stay behind.
    lock = spool_folder(harness.settings.root) / "daemon.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert main(["retry", "x.jsonl", "--root", str(harness.settings.root), "--timeout", "0.5"]) == 1
    finally:
        os.close(fd)
    assert "no daemon took the command within 0.5 s, so it was withdrawn" in capsys.readouterr().err
    assert [p.name for p in spool_folder(harness.settings.root).iterdir()] == ["daemon.lock"]


def test_a_request_is_group_readable_whatever_the_umask(tmp_path: Path) -> None:
    spool_folder(tmp_path).mkdir()
    old = os.umask(0o077)  # as under the systemd unit
    try:
        command_id = request_command(tmp_path, "retry", "x.jsonl", "alice", {"force": True})
    finally:
        os.umask(old)
    request = spool_folder(tmp_path) / f"{command_id}.request.json"
    assert stat.S_IMODE(request.stat().st_mode) == 0o640
    body = json.loads(request.read_text())
    assert (body["kind"], body["target"], body["options"]) == ("retry", "x.jsonl", {"force": True})
    assert daemon_presence(tmp_path) is False


def test_an_outcome_is_group_readable_whatever_the_umask(harness: Harness) -> None:
    old = os.umask(0o077)
    try:
        command_id = request_command(harness.settings.root, "cancel", "gone.jsonl", "alice")
        outcome = wait_until(lambda: command_outcome(harness.settings.root, command_id), what="an outcome")
    finally:
        os.umask(old)
    path = spool_folder(harness.settings.root) / f"{command_id}{OUTCOME_SUFFIX}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert outcome.state == REFUSED and outcome.requested_by == "alice", "its owner is the daemon's own user"
    assert json.loads(path.read_text())["id"] == command_id


def test_an_unreadable_request_is_dropped_and_logged(harness: Harness) -> None:
    bad = spool_folder(harness.settings.root) / "0123.request.json"
    with capture_logs() as captured:
        tmp = bad.with_name(".bad.tmp")
        tmp.write_text("not json")
        tmp.rename(bad)
        wait_until(lambda: not bad.exists(), what="the bad request taken away")
    assert any(e["event"] == "command_request_unreadable" and e["file"] == bad.name for e in captured)
    assert harness.store is not None and harness.store.recent_commands() == []
