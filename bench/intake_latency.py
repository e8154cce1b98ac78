"""Intake latency of the real daemon: a file renamed into pending_upload/ until its batch is created.

The daemon runs as a child process (`python -m daemon run`, see bench/daemon_process.py), as users
run it; the emulator runs in this process on 127.0.0.1, so the two do not compete for one GIL.
Batches stay open (60 s validating, 60 s in progress) and are first polled 5 s after creation, so
status polling stays out of the way of intake.

An input's batch-created time is its own part's `submitted_at` in the daemon's state DB or, when
the daemon packed it into a batch shared with other small inputs, the `submitted_at` of the
carrier job's part. Latency = that time minus the wall-clock time of the input's `os.rename`. The
DB is read through a read-only connection every 0.1 s. Every file has the same custom_ids (r0..r4),
as users' files do, which is the harder case for packing.

Two scenarios, each with its own emulator, daemon and state DB:
- 1 file at a time: 20 files, each dropped only once the previous one's batch exists; p50, p95.
- N files at once (--files, default 1000): all renamed in a loop; p50, p95, time until all submitted.
Run: .venv/bin/python -m bench.intake_latency [--files 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import percentile, scratch, verdict, write_requests
from bench.daemon_process import DaemonProcess
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state import folders
from tests.support import wait_until

ONE_AT_A_TIME = 20
REQUESTS_PER_FILE = 5
LATENCY_TARGET = 1.0  # p95, seconds
ALL_SUBMITTED_TARGET = 30.0  # seconds from the first rename to the last batch created
STARTUP_TIMEOUT = 60.0
ONE_FILE_TIMEOUT = 60.0
ALL_FILES_TIMEOUT = 600.0
WATCH_EVERY = 0.1  # often enough for progress, rare enough not to load the daemon's DB
LOG_TAIL_LINES = 30
# Batches stay open for minutes and are polled late: this measures intake, not the poller.
EMULATOR = EmulatorSettings(validating_seconds=60, in_progress_seconds=60)
DAEMON = {"poll_interval": 5, "first_poll_after": 5, "scan_interval": 1, "min_file_age": 1}


@dataclass(frozen=True, slots=True)
class Result:
    latencies: list[float]
    all_submitted: float  # first rename to the last batch created
    batches: int  # batches created on the emulator


Scenario = Callable[[Path, EmulatorServer, int], Result]


class BatchTimes:
    """When each input's batch was created, read from the daemon's state DB without writing to it."""

    def __init__(self, db: Path) -> None:
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        self._query = _created_query(self._conn)

    def read(self) -> dict[str, float]:
        """Source name -> batch-created time (wall clock), for every input whose batch(es) exist."""
        earliest: dict[tuple[str, int], float | None] = {}
        for name, segment, created in self._conn.execute(self._query):
            # A retried segment has several attempts: its batch exists from the first one created.
            known = [t for t in (earliest.get((name, segment)), created) if t is not None]
            earliest[(name, segment)] = min(known) if known else None
        by_input: dict[str, list[float | None]] = {}
        for (name, _), created in earliest.items():
            by_input.setdefault(name, []).append(created)
        # An input split into several segments is submitted when its last segment's batch exists.
        return {name: max(t for t in times if t is not None) for name, times in by_input.items() if None not in times}

    def close(self) -> None:
        self._conn.close()


def _created_query(conn: sqlite3.Connection) -> str:
    """One row per part: (source name, segment, batch-created time or NULL), for the schema at hand."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(parts)")}
    if "pack_id" not in columns:  # a daemon without packing: every part has its own batch
        return "SELECT j.source_name, p.segment, p.submitted_at FROM parts p JOIN jobs j ON j.id = p.job_id"
    # A packed part (state 'packed') has no batch of its own: the carrier job's part has it.
    return (
        "SELECT j.source_name, p.segment, COALESCE(p.submitted_at, c.submitted_at)"
        " FROM parts p JOIN jobs j ON j.id = p.job_id"
        " LEFT JOIN parts c ON c.job_id = p.pack_id AND c.segment = 0 AND c.attempt = 0"
    )


def stage(root: Path, count: int) -> tuple[Path, list[str]]:
    """Write the inputs next to the drop zone (same filesystem, so the rename is atomic)."""
    staging = root / "staging"
    staging.mkdir()
    names = [f"f{i}.jsonl" for i in range(count)]
    for name in names:
        write_requests(staging / name, count=REQUESTS_PER_FILE)  # same custom_ids r0..r4 in every file
    return staging, names


def drop(staging: Path, root: Path, name: str) -> float:
    os.rename(staging / name, root / "pending_upload" / name)
    return time.time()  # wall clock, as submitted_at is


@contextmanager
def running_daemon(root: Path, emulator: EmulatorServer) -> Iterator[tuple[DaemonProcess, BatchTimes]]:
    """The daemon on ``root``, started and ready; SIGTERM and reaped on the way out, even on error."""
    with DaemonProcess(root, emulator.base_url, DAEMON) as daemon:
        try:
            daemon.wait_for_event("daemon_started", timeout=STARTUP_TIMEOUT)
            times = BatchTimes(root / "state" / folders.DB_NAME)  # the daemon has created it by now
            try:
                yield daemon, times
            finally:
                times.close()
        except BaseException:
            show_log_tail(daemon.log_path)  # the scratch root, and the log with it, is about to go
            raise


def wait_submitted(daemon: DaemonProcess, times: BatchTimes, names: list[str], timeout: float) -> dict[str, float]:
    """Block until every one of ``names`` has its batch; return the batch-created times."""
    created: dict[str, float] = {}

    def done() -> bool:
        if not daemon.running():
            raise RuntimeError("the daemon exited while the benchmark waited for batches")
        created.update(times.read())
        return all(name in created for name in names)

    try:
        wait_until(done, timeout, "every input's batch", every=WATCH_EVERY)
    except AssertionError:  # wait_until's timeout
        missing = sum(name not in created for name in names)
        raise TimeoutError(f"{missing} of {len(names)} inputs have no batch after {timeout:g} s") from None
    return created


def one_at_a_time(root: Path, emulator: EmulatorServer, count: int) -> Result:
    staging, names = stage(root, count)
    dropped: dict[str, float] = {}
    created: dict[str, float] = {}
    with running_daemon(root, emulator) as (daemon, times):
        for name in names:
            dropped[name] = drop(staging, root, name)
            created.update(wait_submitted(daemon, times, [name], ONE_FILE_TIMEOUT))
    return summarize(dropped, created, emulator)


def all_at_once(root: Path, emulator: EmulatorServer, count: int) -> Result:
    staging, names = stage(root, count)
    dropped: dict[str, float] = {}
    with running_daemon(root, emulator) as (daemon, times):
        for name in names:
            dropped[name] = drop(staging, root, name)
        created = wait_submitted(daemon, times, names, ALL_FILES_TIMEOUT)
    return summarize(dropped, created, emulator)


def summarize(dropped: dict[str, float], created: dict[str, float], emulator: EmulatorServer) -> Result:
    latencies = [created[name] - at for name, at in dropped.items()]
    all_submitted = max(created[name] for name in dropped) - min(dropped.values())
    return Result(latencies, all_submitted, len(emulator.batches()))


def measure(scenario: Scenario, count: int) -> Result:
    """One scenario on a fresh emulator, daemon and root, so one cannot slow the other."""
    root = scratch()
    try:
        with EmulatorServer(EMULATOR) as emulator:
            return scenario(root, emulator, count)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def show_log_tail(log_path: Path) -> None:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    print(f"last lines of the daemon log ({log_path}):", *lines[-LOG_TAIL_LINES:], sep="\n", file=sys.stderr)


def report(label: str, result: Result, count: int, *, all_target: bool) -> None:
    p50, p95 = percentile(result.latencies, 50), percentile(result.latencies, 95)
    line = f"intake, {label}: p50 {p50:.3f} s, p95 {p95:.3f} s"
    if all_target:
        line += f", all submitted in {result.all_submitted:.2f} s"
    print(line)
    print(f"batches created: {result.batches} for {count} inputs")
    print(verdict(p95 <= LATENCY_TARGET, f"{label}: p95 {p95:.3f} s <= {LATENCY_TARGET:.0f} s"))
    if all_target:
        ok = result.all_submitted <= ALL_SUBMITTED_TARGET
        print(verdict(ok, f"{label}: all submitted in {result.all_submitted:.2f} s <= {ALL_SUBMITTED_TARGET:.0f} s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="files dropped at once (default 1000)")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    report("1 file at a time", measure(one_at_a_time, ONE_AT_A_TIME), ONE_AT_A_TIME, all_target=False)
    report(f"{args.files:,} files at once", measure(all_at_once, args.files), args.files, all_target=True)


if __name__ == "__main__":
    main()
