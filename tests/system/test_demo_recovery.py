"""`batchd recover --emulator` after the demo lost its state: it asks the same emulators `batchd run
--emulator` gives each provider profile (their state kept under ROOT/.emulator/), so a batch made on the
demo's azure profile (or on an anthropic profile) is adopted, not missed (its input would then have been
sent a second time)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from daemon.state import folders
from tests.support import daemon_env, drop_into, job_states, lose_state, request_file, wait_until

DEMO_CONFIG = Path(__file__).parents[2] / "config" / "demo.toml"


def _env() -> dict[str, str]:
    env = daemon_env("http://127.0.0.1:9/v1")  # never used: --emulator points batchd at its own
    del env["OPENAI_API_KEY"]
    return env


def _batchd(root: Path, *args: str, config: Path = DEMO_CONFIG) -> list[str]:
    return [sys.executable, "-m", "daemon", *args, "--emulator", "--config", str(config), "--root", str(root)]


def _start(root: Path, log: Path, config: Path = DEMO_CONFIG) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        command = [*_batchd(root, "run", config=config), "--poll-interval", "1"]
        return subprocess.Popen(command, env=_env(), stdout=out, stderr=subprocess.STDOUT)


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=30) == 0


def _parts(root: Path) -> list[tuple[str, str | None]]:
    """(profile of its job, batch id) of every part, read from outside the daemon."""
    db = root / "state" / folders.DB_NAME
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT j.profile, p.batch_id FROM parts p JOIN jobs j ON j.id = p.job_id"))
    except sqlite3.OperationalError:  # the daemon is still creating its tables
        return []
    finally:
        conn.close()


def test_recover_with_the_emulator_adopts_a_batch_of_the_demos_azure_profile(tmp_path: Path) -> None:
    root, log = tmp_path / "demo", tmp_path / "daemon.log"
    first = _start(root, log)
    try:
        wait_until((root / "pending_upload").is_dir, 30, "the folders")
        drop_into(root / "pending_upload", "az.jsonl", request_file(4), "azure")
        wait_until(lambda: any(batch for _, batch in _parts(root)), 30, "a batch created on the azure emulator")
    finally:
        _interrupt(first)
    (batch_id,) = [batch for _, batch in _parts(root)]
    lose_state(root)
    done = subprocess.run(_batchd(root, "recover"), env=_env(), capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "adopted 1 batch(es) into 1 job(s)" in done.stdout, done.stdout
    assert _parts(root) == [("azure", batch_id)], "the azure batch adopted, for the azure profile"
    assert not list((root / "pending_upload").rglob("az.jsonl")), "never given back to be sent again"
    second = _start(root, log)
    try:
        wait_until(lambda: job_states(root) == [("az.jsonl", "done")], 60, "the recovered job done")
    finally:
        _interrupt(second)
    assert len((root / "batch_results" / "az" / "results.jsonl").read_text().splitlines()) == 4
    assert _parts(root) == [("azure", batch_id)], "no second batch"


def test_recover_with_the_emulator_adopts_a_batch_of_an_anthropic_profile(tmp_path: Path) -> None:
    root, log, config = tmp_path / "demo", tmp_path / "daemon.log", tmp_path / "batchd.toml"
    config.write_text('[providers.claude]\nkind = "anthropic"\n')
    line = '{"custom_id": "q-%d", "params": {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": %s}}\n'
    first = _start(root, log, config)
    try:
        wait_until((root / "pending_upload").is_dir, 30, "the folders")
        messages = '[{"role": "user", "content": "Hello"}]'
        drop_into(root / "pending_upload", "c.jsonl", "".join(line % (index, messages) for index in range(3)), "claude")
        wait_until(lambda: any(batch for _, batch in _parts(root)), 30, "a batch created on the anthropic emulator")
    finally:
        _interrupt(first)
    (batch_id,) = [batch for _, batch in _parts(root)]
    lose_state(root)
    recover = _batchd(root, "recover", config=config)
    done = subprocess.run(recover, env=_env(), capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # Still running, so found but not yet told apart by its results: the daemon adopts it once it ends.
    assert "1 part(s) wait for running batches" in done.stdout and f": {batch_id}" in done.stdout, done.stdout
    second = _start(root, log, config)
    try:
        wait_until(lambda: job_states(root) == [("c.jsonl", "done")], 60, "the recovered job done")
    finally:
        _interrupt(second)
    assert len((root / "batch_results" / "c" / "results.jsonl").read_text().splitlines()) == 3
    assert _parts(root) == [("claude", batch_id)], "no second batch"
