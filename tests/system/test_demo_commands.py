"""In the demo (`batchd run --emulator`, whose key lives in the daemon only), `batchd cancel` and
`batchd retry` in a second terminal go through the daemon: no key is asked for."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from daemon.ops.command_queue import daemon_presence
from tests.support import daemon_env, wait_until


def _batchd(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args, "--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_commands_beside_the_demo_need_no_key(tmp_path: Path) -> None:
    env = daemon_env("http://127.0.0.1:9/v1")
    del env["OPENAI_API_KEY"]
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--emulator", "--root", str(tmp_path)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: daemon_presence(tmp_path) is True, timeout=30, what="the daemon taking commands")
        cancel = _batchd(tmp_path, env, "cancel", "nothing.jsonl")
        assert cancel.returncode == 1
        assert "no open job for 'nothing.jsonl'" in cancel.stdout
        assert "no daemon runs" not in cancel.stderr and "API key" not in cancel.stderr
        retry = _batchd(tmp_path, env, "retry", "nothing.jsonl")
        assert retry.returncode == 1 and "batchd: retry refused: no input called 'nothing.jsonl'" in retry.stderr

        def refusals() -> list[dict[str, str]]:
            events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            return [e for e in events if e.get("event") == "command_refused"]

        wait_until(lambda: len(refusals()) == 2, what="both refusals logged by the daemon")
        assert sorted(e["kind"] for e in refusals()) == ["cancel", "retry"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    assert daemon.returncode == 0
    assert daemon_presence(tmp_path) is False, "the lock goes with the daemon"
