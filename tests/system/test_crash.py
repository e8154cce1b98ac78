"""The crash matrix: the real daemon, SIGKILLed at every step, then restarted.

Each case proves the three promises that save users money: the input is never lost, exactly one
batch per part exists on the service, and results.jsonl has every request exactly once.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon import crashpoints
from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import (
    FAST,
    daemon_env,
    job_states,
    lose_state,
    request_file,
    run_recover,
    spawn_daemon,
    wait_until,
)

REQUESTS = 7
PER_BATCH = 3  # seven requests in parts of three: three batches per input
KILLED = -signal.SIGKILL


@pytest.fixture(name="crash_emulator")
def crash_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(**FAST, data_dir=tmp_path / "emulator-data")) as server:  # type: ignore[arg-type]
        yield server


class CrashRun:
    """A root folder with inputs dropped, and the daemon started, killed and restarted on it."""

    def __init__(self, tmp_path: Path, server: EmulatorServer, **env: str) -> None:
        # By default inputs are split into parts of three; a case may set other settings instead.
        self.env = env or {"BATCHD_MAX_REQUESTS_PER_BATCH": str(PER_BATCH)}
        self.root = tmp_path / "root"
        self.server = server
        self.log = tmp_path / "daemon.log"
        self.inputs: dict[str, bytes] = {}
        self.recovered = False
        (self.root / "pending_upload").mkdir(parents=True)

    def drop(self, name: str, prefix: str, requests: int = REQUESTS) -> None:
        data = request_file(requests, prefix=prefix).encode()
        staged = self.root / f".{name}"
        staged.write_bytes(data)
        staged.rename(self.root / "pending_upload" / name)
        self.inputs[name] = data

    def start(self, **extra: str) -> subprocess.Popen[bytes]:
        env = daemon_env(self.server.base_url, **{**self.env, **extra})
        return spawn_daemon(self.root, env, self.log)

    def crash_at(self, point: str) -> None:
        proc = self.start(BATCHD_CRASH_AT=point)
        try:
            assert proc.wait(timeout=30) == KILLED, f"the daemon never reached {point}: {self.log.read_text()}"
        finally:
            _end(proc)

    def kill_when(self, ready: Callable[[], bool], what: str) -> None:
        proc = self.start()
        try:
            wait_until(lambda: ready() or proc.poll() is not None, 30, what)
            assert proc.poll() is None, f"the daemon exited before {what}: {self.log.read_text()}"
            proc.kill()
            assert proc.wait(timeout=10) == KILLED
        finally:
            _end(proc)

    def lose_state_and_recover(self) -> None:
        """Delete the database; the daemon refuses to start on what is left, `batchd recover` rebuilds it."""
        lose_state(self.root)
        proc = self.start()
        try:
            assert proc.wait(timeout=30) == 2, f"a start without the database was not refused: {self.log.read_text()}"
        finally:
            _end(proc)
        done = run_recover(self.root, daemon_env(self.server.base_url, **self.env))
        assert done.returncode == 0, done.stdout + done.stderr
        self.recovered = True
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(done.stdout)

    def finish(self) -> None:
        """Restart without faults and wait until every input is done."""
        self.server.faults.clear()
        proc = self.start()
        try:
            try:
                wait_until(self.all_done, 40, "every job to be done after the restart")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the daemon's log:\n{self.log.read_text()[-6000:]}") from None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            _end(proc)

    def done(self) -> int:
        return sum(state == "done" for _, state in job_states(self.root))

    def all_done(self) -> bool:
        """Every input's job done; after a lost database, jobs that ended before it count by their archive."""
        states = job_states(self.root)
        if not self.recovered:
            return sum(state == "done" for _, state in states) == len(self.inputs)
        archived = {p.name for p in (self.root / "uploaded_files").iterdir()}
        return set(self.inputs) <= archived and all(state in ("done", "failed", "rejected") for _, state in states)

    def assert_promises_kept(self) -> None:
        self.assert_inputs_kept()
        self.assert_one_batch_per_part()
        self.assert_results_exactly_once()

    def assert_inputs_kept(self) -> None:
        archived = sorted(p.name for p in (self.root / "uploaded_files").iterdir())
        assert archived == sorted(self.inputs), "each input archived exactly once, under its own name"
        for name, data in self.inputs.items():
            assert (self.root / "uploaded_files" / name).read_bytes() == data
        assert list((self.root / "pending_upload").iterdir()) == []
        assert list((self.root / "state" / "inflight").iterdir()) == []

    def assert_one_batch_per_part(self) -> None:
        per_part = Counter(
            (b["metadata"]["batchd_source"], b["metadata"]["batchd_part"]) for b in self.server.batches()
        )
        parts = sum(-(-data.count(b"\n") // PER_BATCH) for data in self.inputs.values())
        assert len(per_part) == parts, per_part
        duplicates = {key: n for key, n in per_part.items() if n != 1}
        assert duplicates == {}, f"parts with more than one batch on the service: {duplicates}"

    def assert_results_exactly_once(self) -> None:
        for name, data in self.inputs.items():
            wanted = [json.loads(line)["custom_id"] for line in data.decode().splitlines()]
            lines = (self.root / "batch_results" / name.removesuffix(".jsonl") / "results.jsonl").read_text()
            results = [json.loads(line) for line in lines.splitlines()]
            assert [r["custom_id"] for r in results] == wanted, "each request once, in input order"
            assert all(r["response"]["status_code"] == 200 for r in results)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.mark.parametrize("point", sorted(crashpoints.POINTS))
def test_kill_at_each_step_with_inputs_sharing_a_batch(
    point: str, tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    # Small inputs, all claimed in one pass, wait for each other and travel in one shared batch.
    run = CrashRun(tmp_path, crash_emulator, BATCHD_PACK_WAIT="30")
    for name in "abc":
        run.drop(f"{name}.jsonl", "r", requests=2)  # the same custom_ids in every input
    run.crash_at(point)
    run.finish()
    run.assert_inputs_kept()
    run.assert_results_exactly_once()
    # Usually one shared batch; a kill mid-claim may leave one input to go alone. Never a request twice.
    batches = crash_emulator.batches()
    assert sum(b["request_counts"]["total"] for b in batches) == 6, [b["request_counts"] for b in batches]
    assert len(batches) <= 2
    assert list((run.root / "state" / "packs").iterdir()) == [], "no pack folder left, orphaned or finished"


@pytest.mark.parametrize("point", sorted(crashpoints.POINTS - {"packed", "unpacked", "handed_over"}))
def test_kill_at_each_step_then_restart_keeps_every_promise(
    point: str, tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    run = CrashRun(tmp_path, crash_emulator)
    run.drop("a.jsonl", "a")
    run.drop("b.jsonl", "b")
    run.crash_at(point)
    run.finish()
    run.assert_promises_kept()


def test_kill_after_the_last_download_before_the_merge_still_finishes(
    tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    run = CrashRun(tmp_path, crash_emulator)
    run.drop("one-part.jsonl", "a", requests=2)  # its only part is also its last
    run.crash_at("collected")
    run.finish()
    run.assert_promises_kept()


# Kills from outside while a request is in flight: the service may or may not have acted on it.
IN_FLIGHT = {
    "during_upload": {"action": "slow", "method": "POST", "path_prefix": "/v1/files", "delay": 5.0},
    "during_create": {
        "action": "slow",
        "method": "POST",
        "path_prefix": "/v1/batches",
        "delay": 5.0,
        "after_processing": True,
    },
    "during_poll": {"action": "slow", "method": "GET", "path_prefix": "/v1/batches", "delay": 5.0},
    "during_download": {"action": "slow", "method": "GET", "path_prefix": "/v1/files/", "delay": 5.0},
}


@pytest.mark.parametrize("case", sorted(IN_FLIGHT))
def test_kill_with_a_request_in_flight_then_restart_keeps_every_promise(
    case: str, tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    run = CrashRun(tmp_path, crash_emulator)
    run.drop("a.jsonl", "a")
    crash_emulator.faults.add_rule(**IN_FLIGHT[case])
    run.kill_when(lambda: crash_emulator.faults.fired >= 1, f"a request to be held {case}")
    run.finish()
    run.assert_promises_kept()


def test_repeated_kills_at_random_moments_under_load(tmp_path: Path, crash_emulator: EmulatorServer) -> None:
    run = CrashRun(tmp_path, crash_emulator)
    for i in range(8):
        run.drop(f"f{i}.jsonl", f"f{i}-")
    moments = random.Random(7)
    for _ in range(4):
        limit = len(crash_emulator.calls) + moments.randint(1, 12)

        def moment_came(limit: int = limit) -> bool:
            return len(crash_emulator.calls) >= limit or run.done() == len(run.inputs)

        run.kill_when(moment_came, "more API calls")
    run.finish()
    run.assert_promises_kept()


# Recovery after a lost database, at a few points each side of every call to the service (the whole
# matrix twice would double its time): the same promises hold, and nothing is submitted again.
RECOVER_POINTS = ["claimed", "uploaded", "batch_created", "polled", "downloaded", "merging", "input_linked"]


@pytest.mark.parametrize("point", RECOVER_POINTS)
def test_kill_lose_the_database_and_recover_keeps_every_promise(
    point: str, tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    run = CrashRun(tmp_path, crash_emulator)
    run.drop("a.jsonl", "a")
    run.drop("b.jsonl", "b")
    run.crash_at(point)
    run.lose_state_and_recover()
    run.finish()
    run.assert_promises_kept()


@pytest.mark.parametrize("point", ["packed", "unpacked", "handed_over"])
def test_kill_in_a_shared_batch_lose_the_database_and_recover_keeps_every_promise(
    point: str, tmp_path: Path, crash_emulator: EmulatorServer
) -> None:
    run = CrashRun(tmp_path, crash_emulator, BATCHD_PACK_WAIT="30")
    for name in "abc":
        run.drop(f"{name}.jsonl", "r", requests=2)
    run.crash_at(point)
    run.lose_state_and_recover()
    run.finish()
    run.assert_inputs_kept()
    run.assert_results_exactly_once()
    batches = crash_emulator.batches()
    assert sum(b["request_counts"]["total"] for b in batches) == 6, [b["request_counts"] for b in batches]
    assert list((run.root / "state" / "packs").iterdir()) == [], "no pack folder left"
