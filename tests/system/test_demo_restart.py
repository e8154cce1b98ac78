"""`batchd run --emulator` stopped with Ctrl-C and started again, as `make demo` is: its emulator keeps its
batches under the root (an anthropic profile's too), so the old jobs finish; one that really lost its batch
ends clearly."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from daemon.engine.emulated_profiles import EMULATOR_DIR
from daemon.state import folders
from tests.support import daemon_env, drop_into, job_states, request_file, wait_until


def _start(root: Path, log: Path, config: Path | None = None) -> subprocess.Popen[bytes]:
    env = daemon_env("http://127.0.0.1:9/v1")  # never used: --emulator points batchd at its own
    del env["OPENAI_API_KEY"]
    with open(log, "ab") as out:
        command = [sys.executable, "-m", "daemon", "run", "--emulator", "--root", str(root), "--poll-interval", "1"]
        command += ["--config", str(config)] if config is not None else []
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=30) == 0


def _batch_created(root: Path) -> bool:
    db = root / "state" / folders.DB_NAME
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        return bool(conn.execute("SELECT COUNT(*) FROM parts WHERE batch_id IS NOT NULL").fetchone()[0] > 0)
    except sqlite3.OperationalError:  # the daemon is still creating its tables
        return False
    finally:
        conn.close()


def _drop_and_stop_after_submission(
    root: Path, log: Path, config: Path | None = None, folder: str = "", content: str | None = None
) -> None:
    first = _start(root, log, config)
    try:
        wait_until((root / "pending_upload").is_dir, 30, "the folders")
        drop_into(root / "pending_upload", "demo.jsonl", content if content is not None else request_file(4), folder)
        wait_until(lambda: _batch_created(root), 30, "a batch created")
    finally:
        _interrupt(first)
    assert job_states(root) == [("demo.jsonl", "active")], "stopped mid-batch, as a Ctrl-C in the demo is"


def test_a_restarted_demo_finishes_its_old_batches(tmp_path: Path) -> None:
    root = tmp_path / "demo"  # `run` creates it
    log = tmp_path / "daemon.log"
    _drop_and_stop_after_submission(root, log)
    assert (root / EMULATOR_DIR / "state.json").is_file()
    second = _start(root, log)
    try:
        wait_until(lambda: job_states(root) == [("demo.jsonl", "done")], 60, "the old job done")
    finally:
        _interrupt(second)
    results = (root / "batch_results" / "demo" / "results.jsonl").read_text().splitlines()
    assert len(results) == 4
    assert '"batch_lost"' not in log.read_text()


def test_a_batch_the_emulator_really_lost_ends_with_a_report_not_endless_polling(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    log = tmp_path / "daemon.log"
    _drop_and_stop_after_submission(root, log)
    shutil.rmtree(root / EMULATOR_DIR)  # its state deleted: the batch is gone for good
    second = _start(root, log)
    try:
        wait_until(lambda: job_states(root) == [("demo.jsonl", "failed")], 60, "the job ended as lost")
    finally:
        _interrupt(second)
    report = (root / "failed" / "demo.jsonl.report.txt").read_text()
    assert "no longer knows" in report
    assert "batchd retry demo.jsonl" in report


def _message_requests(count: int) -> str:
    line = '{"custom_id": "q-%d", "params": {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": %s}}\n'
    return "".join(line % (index, '[{"role": "user", "content": "Hello"}]') for index in range(count))


def test_a_restarted_demo_finishes_the_old_batches_of_an_anthropic_profile(tmp_path: Path) -> None:
    root, log, config = tmp_path / "demo", tmp_path / "daemon.log", tmp_path / "batchd.toml"
    config.write_text('[providers.claude]\nkind = "anthropic"\n')
    _drop_and_stop_after_submission(root, log, config, folder="claude", content=_message_requests(4))
    assert (root / EMULATOR_DIR / "anthropic" / "message_batches.json").is_file()
    second = _start(root, log, config)
    try:
        wait_until(lambda: job_states(root) == [("demo.jsonl", "done")], 60, "the old job done")
    finally:
        _interrupt(second)
    results = (root / "batch_results" / "demo" / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in results) == ["q-0", "q-1", "q-2", "q-3"]
    assert '"batch_lost"' not in log.read_text()
