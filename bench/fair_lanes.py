"""Fair lanes: small inputs dropped while a big input is split and uploaded still get their batch at once.

The daemon runs as a child process (`python -m daemon run`), the emulator as another
(`python -m daemon.emulator`), so neither shares the daemon's GIL. Uploads of the big input's
parts are slow, as against the real service: the emulator holds each upload over 1 MB for
--upload-delay seconds (a "slow" fault with min_bytes) before reading it. Batches stay open for
minutes, so status polls and downloads stay out of the way.

A big input (--big-mb, default 2,000 MB, --big-requests requests) is renamed into pending_upload/;
then small inputs (5 requests each) are renamed in one at a time, one every --every seconds (so
they sample the big input's whole run evenly), for as long as the big input is still being split
or uploaded (at most --max-small). Latency = a small input's batch-created time (its part's
submitted_at, or its pack's, as in bench.intake_latency) minus the time of its rename. Free disk is
checked first (the input, its part files and the emulator's copy: about 3x --big-mb); everything
is removed at the end.
Run: .venv/bin/python -m bench.fair_lanes [--big-mb 2000 --big-requests 500000 --upload-delay 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import percentile, scratch, verdict, write_requests
from bench.daemon_process import DaemonProcess
from bench.intake_latency import BatchTimes, show_log_tail
from bench.memory import write_sized
from daemon.state import folders
from tests.support import wait_until

LATENCY_TARGET = 1.0  # p95 seconds, drop to batch created, while the big input runs
SMALL_REQUESTS = 5
SLOW_UPLOAD_BYTES = 1_000_000  # the emulator slows uploads at least this big: the big input's parts
DISK_FACTOR = 3.2  # the input, its part files and the emulator's copy, plus room
STARTUP_TIMEOUT = 60.0
SMALL_TIMEOUT = 120.0  # the small inputs' batches, once the big input has all of its own
BIG_TIMEOUT = 1800.0
WATCH_EVERY = 0.05
# Batches stay open for the whole run: this measures intake, not polling or collection.
EMULATOR_ARGS = ("--validating-seconds", "3600", "--in-progress-seconds", "3600")
DAEMON = {"poll_interval": 30, "first_poll_after": 30, "scan_interval": 1, "min_file_age": 1}


@dataclass(slots=True)
class Result:
    latencies: list[float] = field(default_factory=list)  # small inputs dropped while the big one ran
    during_split: list[float] = field(default_factory=list)  # ... of them, while it was being split
    big_split: float = 0.0  # big input renamed in -> split into parts
    big_submitted: float = 0.0  # big input renamed in -> its last batch created
    big_parts: int = 0


@contextmanager
def emulator_process(root: Path, upload_delay: float, slow_uploads: int) -> Iterator[str]:
    """The emulator in a process of its own, big uploads slowed; yields its base URL."""
    args = [sys.executable, "-m", "daemon.emulator", "--port", "0", "--data-dir", str(root / "emulator-data")]
    proc = subprocess.Popen([*args, *EMULATOR_ARGS], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]  # "emulator listening on URL"
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the emulator did not start (said {base_url!r})")
        if upload_delay > 0:
            rule = {"action": "slow", "method": "POST", "path_prefix": "/v1/files", "delay": upload_delay}
            rule |= {"min_bytes": SLOW_UPLOAD_BYTES, "count": slow_uploads}
            set_faults(base_url, {"rules": [rule]})
        yield base_url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def set_faults(base_url: str, payload: dict[str, object]) -> None:
    url = base_url.removesuffix("/v1") + "/_emulator/faults"
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        reply.read()


class BigInput:
    """The big input's progress, read from the daemon's state DB without writing to it."""

    def __init__(self, db: Path, name: str) -> None:
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        self.name = name

    def stage(self) -> str:
        """ "arriving" (claimed, being split), "uploading" (parts without a batch) or "submitted"."""
        job = self._conn.execute("SELECT id, state FROM jobs WHERE source_name = ?", (self.name,)).fetchone()
        if job is None or job[1] in ("claiming", "claimed"):
            return "arriving"
        waiting = self._conn.execute(
            "SELECT COUNT(*) FROM parts WHERE job_id = ? AND submitted_at IS NULL AND state != 'superseded'", (job[0],)
        ).fetchone()[0]
        return "uploading" if waiting else "submitted"

    def parts(self) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM parts p JOIN jobs j ON j.id = p.job_id WHERE j.source_name = ?", (self.name,)
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.close()


def free_disk_ok(root: Path, big_bytes: int) -> bool:
    free = shutil.disk_usage(root).free
    need = int(big_bytes * DISK_FACTOR) + 1_000_000_000
    if free < need:
        print(
            f"not enough free disk under {root}: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed", file=sys.stderr
        )
    return free >= need


def run(root: Path, args: argparse.Namespace) -> Result:
    staging = root / "staging"
    staging.mkdir()
    big = "big.jsonl"
    print(f"writing a {args.big_mb:,} MB input of {args.big_requests:,} requests ...", flush=True)
    write_sized(staging / big, args.big_requests, args.big_mb * 1_000_000)
    smalls = [f"small{i}.jsonl" for i in range(args.max_small)]
    for name in smalls:
        write_requests(staging / name, count=SMALL_REQUESTS)
    slow_uploads = args.big_mb // 100 + 10  # more than the big input has parts
    with (
        emulator_process(root, args.upload_delay, slow_uploads) as base_url,
        DaemonProcess(root, base_url, DAEMON) as daemon,
    ):
        try:
            daemon.wait_for_event("daemon_started", timeout=STARTUP_TIMEOUT)
            db = root / "state" / folders.DB_NAME
            times, progress = BatchTimes(db), BigInput(db, big)
            try:
                return drop_all(root, staging, daemon, times, progress, smalls, args.every)
            finally:
                times.close()
                progress.close()
        except BaseException:
            show_log_tail(daemon.log_path)
            raise


def drop_all(
    root: Path, staging: Path, daemon: DaemonProcess, times: BatchTimes, big: BigInput, smalls: list[str], every: float
) -> Result:
    """Drop the big input, then a small one every ``every`` seconds while it is split and uploaded."""
    result, pause = Result(), threading.Event()
    seen: dict[str, float] = {}  # the big input's stage -> when first seen
    dropped: dict[str, tuple[float, str]] = {}  # small input -> (when, the big input's stage then)
    started = drop(staging, root, big.name)

    def watch() -> None:
        seen.setdefault(big.stage(), time.time())

    for name in smalls:
        stage = big.stage()
        seen.setdefault(stage, time.time())
        if stage == "submitted":
            break
        dropped[name] = (drop(staging, root, name), stage)
        pause.wait(every)
    result.big_submitted = wait_created(daemon, times, [big.name], watch, BIG_TIMEOUT)[big.name] - started
    created = wait_created(daemon, times, list(dropped), watch, SMALL_TIMEOUT)
    for name, (at, stage) in dropped.items():
        result.latencies.append(created[name] - at)
        if stage == "arriving":
            result.during_split.append(created[name] - at)
    result.big_split = min(t for stage, t in seen.items() if stage != "arriving") - started
    result.big_parts = big.parts()
    return result


def drop(staging: Path, root: Path, name: str) -> float:
    os.rename(staging / name, root / "pending_upload" / name)
    return time.time()  # wall clock, as submitted_at is


def wait_created(
    daemon: DaemonProcess, times: BatchTimes, names: list[str], watch: Callable[[], None], timeout: float
) -> dict[str, float]:
    """Block until each of ``names`` has its batch(es); return when each one's last was created."""
    created: dict[str, float] = {}

    def done() -> bool:
        if not daemon.running():
            raise RuntimeError("the daemon exited while the benchmark waited for batches")
        watch()
        created.update(times.read())
        return all(name in created for name in names)

    wait_until(done, timeout, "every batch", every=WATCH_EVERY)
    return created


def report(result: Result, args: argparse.Namespace) -> None:
    print(
        f"big input {args.big_mb:,} MB / {args.big_requests:,} requests, {result.big_parts} parts: split in "
        f"{result.big_split:.1f} s, every batch created {result.big_submitted:.1f} s after the drop "
        f"(uploads over 1 MB held {args.upload_delay:g} s each by the emulator)"
    )
    if not result.latencies:
        print(verdict(False, "no small input was dropped while the big one ran (make it bigger)"))
        return
    p50, p95 = percentile(result.latencies, 50), percentile(result.latencies, 95)
    worst = max(result.latencies)
    print(
        f"small inputs while the big one ran: {len(result.latencies)} "
        f"({len(result.during_split)} while it was split): p50 {p50:.3f} s, p95 {p95:.3f} s, max {worst:.3f} s"
    )
    if result.during_split:
        print(f"  while it was split: p95 {percentile(result.during_split, 95):.3f} s")
    print(verdict(p95 <= LATENCY_TARGET, f"small inputs beside a big one: p95 {p95:.3f} s <= {LATENCY_TARGET:.0f} s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=int, default=2000, help="size of the big input (default 2000)")
    parser.add_argument("--big-requests", type=int, default=500_000, help="its requests (default 500000)")
    parser.add_argument("--upload-delay", type=float, default=5.0, help="seconds each big part's upload is held")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between two small drops (default 0.5)")
    parser.add_argument("--max-small", type=int, default=300, help="small inputs at most (default 300)")
    args = parser.parse_args()
    if args.big_mb < 1 or args.big_requests < 1 or args.max_small < 1 or args.every <= 0 or args.upload_delay < 0:
        parser.error("sizes and counts must be at least 1, --every above 0, the delay 0 or more")
    root = scratch()
    try:
        if free_disk_ok(root, args.big_mb * 1_000_000):
            report(run(root, args), args)
        else:  # the other benchmarks of `make bench` still run
            print(verdict(False, "small inputs beside a big one: not measured, not enough free disk"))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
