"""The crash matrix for a profile of kind anthropic: the real daemon SIGKILLed after the service
accepted a Message Batch and before its id was recorded, then restarted.

Message Batches carry no metadata, so the restarted daemon can only find the batch it made by its
request count and, once it ended, by the custom_ids of its results. After the restart exactly one
batch exists per part and every request ran exactly once (counted per custom_id in the service's
own results).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import FAST, daemon_env, job_states, lose_state, run_recover, spawn_daemon, wait_until
from tests.unit.emulator.anthropic_helpers import anthropic_client

REQUESTS = 7
PER_BATCH = 3  # seven requests in parts of three: three batches per input
KILLED = -signal.SIGKILL


@pytest.fixture(name="claude_emulator")
def claude_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    values = {**FAST, "data_dir": tmp_path / "emulator-data", "flavour": "anthropic"}
    with EmulatorServer(EmulatorSettings(**values)) as server:  # type: ignore[arg-type]
        yield server


def claude_input(prefix: str) -> bytes:
    lines = (
        {
            "custom_id": f"{prefix}-{i}",
            "params": {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": f"n {i}"}]},
        }
        for i in range(REQUESTS)
    )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _env(tmp_path: Path, server: EmulatorServer, **extra: str) -> dict[str, str]:
    config = tmp_path / "batchd.toml"
    config.write_text(
        f'[providers.claude]\nkind = "anthropic"\nbase_url = "{server.base_url}"\n'
        f"max_requests_per_batch = {PER_BATCH}\n",
        encoding="utf-8",
    )
    return daemon_env(server.url, BATCHD_CONFIG=str(config), ANTHROPIC_API_KEY="test-key", **extra)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _killed_after_a_create(tmp_path: Path, server: EmulatorServer, root: Path, log: Path) -> dict[str, bytes]:
    """Drop two inputs under the claude profile and run the daemon until it is SIGKILLed once the service
    accepted a batch (its reply never recorded); the inputs, by name."""
    inputs = {name: claude_input(name.removesuffix(".jsonl")) for name in ("first.jsonl", "second.jsonl")}
    drop = root / "pending_upload" / "claude"
    drop.mkdir(parents=True)
    for name, data in inputs.items():
        (drop / f".{name}").write_bytes(data)
        (drop / f".{name}").rename(drop / name)
    proc = spawn_daemon(root, _env(tmp_path, server, BATCHD_CRASH_AT="batch_created"), log)
    try:
        assert proc.wait(timeout=30) == KILLED, f"the daemon never reached batch_created: {log.read_text()}"
    finally:
        _end(proc)
    return inputs


def _run_until_done(root: Path, env: dict[str, str], log: Path, jobs: int, what: str) -> None:
    """Run the daemon until ``jobs`` jobs are done, then stop it with SIGTERM: it exits 0."""
    proc = spawn_daemon(root, env, log)
    try:
        done = lambda: sum(state == "done" for _, state in job_states(root)) == jobs  # noqa: E731
        wait_until(done, 120, what)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        _end(proc)


def test_a_kill_after_the_create_was_accepted_leaves_one_batch_per_part_and_every_request_run_once(
    tmp_path: Path, claude_emulator: EmulatorServer
) -> None:
    root, log = tmp_path / "root", tmp_path / "daemon.log"
    inputs = _killed_after_a_create(tmp_path, claude_emulator, root, log)
    # Parts are submitted in parallel: the kill may find other creates answered too, none recorded.
    assert claude_emulator.batches(), "the service should hold the batch whose reply was never recorded"

    _run_until_done(root, _env(tmp_path, claude_emulator), log, len(inputs), "both inputs done after the restart")

    assert_every_request_ran_once(claude_emulator, inputs, root, parts=len(inputs) * -(-REQUESTS // PER_BATCH))


def assert_every_request_ran_once(server: EmulatorServer, inputs: dict[str, bytes], root: Path, parts: int) -> None:
    """Exactly one batch per part on the service, every request run once (counted per custom_id in
    the service's own results), and each input's results in input order."""
    batches = server.batches()
    assert len(batches) == parts, f"{len(batches)} batches for {parts} parts"
    client = anthropic_client(server)
    ran = Counter(line.custom_id for batch in batches for line in client.messages.batches.results(batch["id"]))
    wanted = [json.loads(line)["custom_id"] for data in inputs.values() for line in data.splitlines()]
    assert ran == Counter(wanted), "every request ran exactly once"
    for name, data in inputs.items():
        results = (root / "batch_results" / name.removesuffix(".jsonl") / "results.jsonl").read_text().splitlines()
        in_order = [json.loads(line)["custom_id"] for line in data.splitlines()]
        assert [json.loads(line)["custom_id"] for line in results] == in_order
        assert {json.loads(line)["result"]["type"] for line in results} == {"succeeded"}


def test_a_kill_after_the_creates_then_a_lost_database_recovers_without_a_second_batch_or_a_rerun(
    tmp_path: Path, claude_emulator: EmulatorServer, emulator: EmulatorServer
) -> None:
    """The daemon SIGKILLed once the service accepted a batch, then the state database lost:
    `batchd recover` matches each input's parts with the batches by request count and results'
    custom_ids (or leaves a running one to the daemon), and the restart collects them. The default
    profile has a service of its own (recover lists every configured profile's batches)."""
    default = {"OPENAI_BASE_URL": emulator.base_url}
    root, log = tmp_path / "root", tmp_path / "daemon.log"
    inputs = _killed_after_a_create(tmp_path, claude_emulator, root, log)
    lose_state(root)
    made = len(claude_emulator.batches())
    assert made >= 1, "the service should hold the batch whose reply was never recorded"

    said = run_recover(root, _env(tmp_path, claude_emulator, **default))
    assert said.returncode == 0, said.stdout + said.stderr
    assert "left 0 thing(s)" in said.stdout, said.stdout
    again = run_recover(root, _env(tmp_path, claude_emulator, **default))
    assert "adopted 0 batch(es) into 0 job(s)" in again.stdout and "returned 0 input(s)" in again.stdout, again.stdout

    _run_until_done(root, _env(tmp_path, claude_emulator), log, len(inputs), "both inputs done after the recovery")
    assert_every_request_ran_once(claude_emulator, inputs, root, parts=len(inputs) * -(-REQUESTS // PER_BATCH))
