"""`batchd status`: progress over every attempt, and `--watch` until Ctrl-C."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
from pathlib import Path

from daemon.errors import DaemonError
from daemon.status_view import job_rows, render_table, watch
from tests.conftest import Harness, daemon_env, request_file, wait_until


def test_progress_counts_requests_that_ran_in_superseded_attempts(harness: Harness) -> None:
    harness.drop("exp.jsonl", request_file(8, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    assert harness.store is not None
    outcomes = harness.summary("exp.jsonl")["outcomes"]
    [row] = job_rows(harness.store)
    assert row["resubmissions"] >= 1
    assert row["requests_total"] == 8
    # Every request that ran, in any attempt; only the newest attempt's counts would be fewer.
    assert row["requests_done"] == outcomes["succeeded"] + outcomes["failed"]
    newest = harness.summary("exp.jsonl")["batches"][-1]["request_counts"]
    assert row["requests_done"] > newest["completed"] + newest["failed"]


def test_watch_redraws_until_stopped() -> None:
    stop = threading.Event()
    frames: list[int] = []

    def frame() -> str:
        frames.append(1)
        if len(frames) == 2:
            raise DaemonError("no state database yet")
        if len(frames) == 3:
            stop.set()
        return f"frame {len(frames)}"

    out = io.StringIO()
    assert watch(frame, stop, 0.01, out, clear=False, header=True) == 3
    text = out.getvalue()
    assert text.count("batchd status at") == 3
    assert "frame 1" in text and "batchd: no state database yet" in text and "frame 3" in text


def test_watch_json_is_one_document_per_line() -> None:
    stop = threading.Event()
    out = io.StringIO()

    def frame() -> str:
        stop.set()
        return '{"jobs": []}'

    watch(frame, stop, 0.01, out, clear=False, header=False)
    assert out.getvalue() == '{"jobs": []}\n'


def test_status_watch_ends_cleanly_on_ctrl_c(harness: Harness, tmp_path: Path) -> None:
    harness.drop("w.jsonl", request_file(2))
    harness.wait_job("w.jsonl")
    log = tmp_path / "watch.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon",
                "status",
                "--watch",
                "--interval",
                "0.1",
                "--root",
                str(harness.settings.root),
            ],
            env=daemon_env(harness.server.base_url),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: log.read_text().count("batchd status at") >= 2, what="two frames")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert "w.jsonl" in text and "2/2" in text
    assert "Traceback" not in text


def test_bad_interval_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "daemon", "status", "--watch", "--interval", "0", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--interval" in out.stderr


def test_table_escapes_control_characters_in_file_names(harness: Harness) -> None:
    harness.drop("evil\x1b]0;owned\x07.jsonl", request_file(2))
    harness.wait_job("evil\x1b]0;owned\x07.jsonl")
    assert harness.store is not None
    table = render_table(job_rows(harness.store))
    assert "\x1b" not in table and "\x07" not in table
    assert "evil\\x1b]0;owned\\x07.jsonl" in table
