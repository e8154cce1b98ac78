"""Restarts and the process as users run it: in-flight batches survive, SIGTERM stops cleanly."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState, PartState
from tests.support import (
    TEST_KEY,
    Harness,
    daemon_env,
    fast_settings,
    job_states,
    request_file,
    spawn_daemon,
    wait_until,
)


def test_restart_while_in_flight_adopts_and_finishes(tmp_path: Path) -> None:
    slow = EmulatorSettings(
        validating_seconds=0.05, in_progress_seconds=1.5, finalizing_seconds=0.05, data_dir=tmp_path / "emu"
    )
    with EmulatorServer(slow) as emulator:
        root = tmp_path / "root"
        root.mkdir()
        first = Harness(fast_settings(root, emulator.base_url), emulator).start()
        first.drop("a.jsonl", request_file(5))
        job = wait_until(lambda: (j := first.job("a.jsonl")) and j.state == JobState.ACTIVE and j)
        store = first.store
        assert store is not None
        wait_until(lambda: all(p.state == PartState.SUBMITTED for p in store.parts(job.id)))
        first.stop()
        second = Harness(fast_settings(root, emulator.base_url), emulator).start()
        try:
            second.wait_job("a.jsonl")
            assert len(emulator.batches()) == 1
            assert [r["custom_id"] for r in second.results("a.jsonl")] == [f"r{i}" for i in range(5)]
        finally:
            second.stop()


def test_sigterm_stops_within_ten_seconds(tmp_path: Path, emulator: EmulatorServer) -> None:
    root = tmp_path / "root"
    root.mkdir()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(10)
    env = daemon_env(emulator.base_url, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    proc = spawn_daemon(root, env, tmp_path / "daemon.log")
    try:
        wait_until(lambda: notify.recv(4096) == b"READY=1", what="READY=1 after the start-up scan")
        (root / "pending_upload" / "x.jsonl").write_text(request_file(3))
        wait_until(lambda: ("x.jsonl", "done") in job_states(root), what="the file to be done")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        notify.settimeout(0)
        messages = []
        while True:
            try:
                messages.append(notify.recv(4096))
            except BlockingIOError:
                break
        assert b"STOPPING=1" in messages
        assert any(m.startswith(b"STATUS=") for m in messages)
    finally:
        proc.kill()
        proc.wait()
        notify.close()
    log = (tmp_path / "daemon.log").read_text()
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert "daemon_stopped" in events
    assert TEST_KEY not in log


def test_second_instance_is_refused(tmp_path: Path, emulator: EmulatorServer) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = spawn_daemon(root, daemon_env(emulator.base_url), tmp_path / "first.log")
    try:
        wait_until(lambda: "daemon_started" in (tmp_path / "first.log").read_text(), what="the first daemon")
        second = run_batchd(root, daemon_env(emulator.base_url))
        assert second.returncode == 2  # two daemons on one root: a set-up problem a restart cannot fix
        assert "already running" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)


def run_batchd(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`batchd run` in a child process, for start-up failures that end it at once."""
    return subprocess.run(
        [sys.executable, "-m", "daemon", "run", "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_run_without_key_fails_loudly(tmp_path: Path) -> None:
    env = daemon_env("http://127.0.0.1:9/v1")
    del env["OPENAI_API_KEY"]
    out = run_batchd(tmp_path, env)
    assert out.returncode == 2  # a configuration problem: systemd's RestartPreventExitStatus=2 stops there
    assert "no OpenAI API key" in out.stderr
    assert "--emulator" in out.stderr
    assert not (tmp_path / "pending_upload").exists()  # nothing was started


def test_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    env = daemon_env("http://127.0.0.1:9/v1", BATCHD_WATCH_MODE="sometimes")
    out = run_batchd(tmp_path, env)
    assert out.returncode == 2
    assert "watch_mode must be one of" in out.stderr
