"""`batchd status`: progress over every attempt, and `--watch` until Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.cli.status import job_rows, render_table
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState
from tests.support import FAST, Harness, daemon_env, fast_settings, request_file, wait_until


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


def test_finished_jobs_show_succeeded_failed_and_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator-data", request_error_rate=0.5)  # type: ignore[arg-type]
    root = tmp_path / "root"
    root.mkdir()
    with EmulatorServer(settings) as emulator:
        harness = Harness(fast_settings(root, emulator.base_url, resubmit_unfinished=frozenset()), emulator).start()
        try:
            harness.drop("mixed.jsonl", request_file(10, model="gpt-expire"))
            harness.drop("bad.jsonl", request_file(6, model="gpt-fail-all"))
            harness.wait_job("mixed.jsonl")
            harness.wait_job("bad.jsonl")
            outcomes = harness.summary("mixed.jsonl")["outcomes"]
        finally:
            harness.stop()
    assert all(outcomes.values()), "the input must have succeeded, failed and unrun requests"
    capsys.readouterr()  # the engine's own log lines
    assert main(["status", "--root", str(root), "--json"]) == 0
    rows = {r["file"]: r for r in json.loads(capsys.readouterr().out)["jobs"]}
    assert rows["mixed.jsonl"]["outcomes"] == outcomes
    assert rows["bad.jsonl"]["outcomes"] == {"succeeded": 0, "failed": 6, "not_run": 0}
    assert main(["status", "--root", str(root)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[4] == "OK/FAILED/NOT-RUN"
    bad = next(line.split() for line in table if line.startswith("bad.jsonl"))
    mixed = next(line.split() for line in table if line.startswith("mixed.jsonl"))
    assert bad[3:5] == ["6/6", "0/6/0"]
    assert mixed[4] == f"{outcomes['succeeded']}/{outcomes['failed']}/{outcomes['not_run']}"


def test_outcomes_are_unknown_until_the_job_ends(harness: Harness) -> None:
    harness.server.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=500)
    harness.drop("wait.jsonl", request_file(2))
    harness.wait_job("wait.jsonl", JobState.ACTIVE)
    assert harness.store is not None
    [row] = job_rows(harness.store)
    assert row["outcomes"] is None
    assert "wait.jsonl" in render_table([row]) and render_table([row]).splitlines()[1].split()[4] == "-"
