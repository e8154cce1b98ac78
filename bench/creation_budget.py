"""The hourly creation budget under a trickle: small files dropped one by one at an even pace over an
hour, at an emulator that allows as many batch creations per window as the service does per hour.

The hour is scaled down, the pace is not. A real hour of this trickle is 5,000 files (two requests each,
renamed into pending_upload/ one every 0.72 s) against 2,000 creates per 3,600 s. With --scale S (default
30) the files, the budget and the window are all divided by S (167 files, 67 creates per 120 s, on both
sides: the daemon's creation_budget and creation_window, the emulator's create_limit and create_window),
while the pace of the files (0.72 s apart), pack_wait (0.5 s) and pack_wait_max (60 s) stay real: so each
file still arrives alone in the queue, as in a real trickle, and the wait needed per batch to stay under
the budget (window / budget = 1.8 s) is the real one. --scale 1 is the real hour (5,000 files, one hour).
Scaling time instead (5,000 files in two minutes) would not test a trickle: files 24 ms apart find company
anyway. The daemon runs in its own process; the emulator, in this one, keeps batches open (the poller stays
out of the way) and answers a create beyond its limit with 429 and Retry-After.

Targets: batches created in any window-long span <= the budget (from the emulator's `created_at`, whole
seconds, over the whole run: the trickle and its tail); 429s at most 1% of the creates (with a scaled
budget of 67, that is none). Also printed: from a file's rename to its batch's creation, p50 / p95 / max,
against the bound on waiting for company (pack_wait_max). --budget-off runs the same trickle with the
daemon's budget out of the way (the emulator still limits), to show what it prevents.
Run: .venv/bin/python -m bench.creation_budget [--scale 30] [--budget-off]
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import percentile, scratch, verdict, write_requests
from bench.daemon_process import DaemonProcess
from bench.intake_latency import BatchTimes, show_log_tail
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state import folders
from tests.support import wait_until

REAL_HOUR = 3600.0
FILES_PER_HOUR, BUDGET_PER_HOUR = 5000, 2000
PACK_WAIT, PACK_WAIT_MAX = 0.5, 60.0  # the daemon's defaults, not scaled
REQUESTS_PER_FILE = 2
MAX_429_SHARE = 0.01
STARTUP_TIMEOUT = 60.0
WATCH_EVERY = 1.0  # reading 5,000 inputs' batch times is a join: not too often
OFF = 10**9  # a budget the trickle cannot reach


@dataclass(frozen=True, slots=True)
class Run:
    creates: int
    refused: int  # creates answered 429
    busiest: int  # creates in the busiest window-long span
    latencies: list[float]  # rename to batch created, per file


def stage(root: Path, count: int) -> tuple[Path, list[str]]:
    staging = root / "staging"
    staging.mkdir()
    names = [f"t{i:05d}.jsonl" for i in range(count)]
    for name in names:
        write_requests(staging / name, count=REQUESTS_PER_FILE)
    return staging, names


def trickle(staging: Path, pending: Path, names: list[str], hour: float) -> dict[str, float]:
    """Rename the files into the drop zone at an even pace over ``hour`` seconds; when each went in."""
    gap, pace, dropped = hour / len(names), threading.Event(), {}
    start = time.monotonic()
    for i, name in enumerate(names):
        pace.wait(max(0.0, start + i * gap - time.monotonic()))  # a producer's pace, not a wait on the daemon
        os.rename(staging / name, pending / name)
        dropped[name] = time.time()  # wall clock, as submitted_at is
    return dropped


def measure(files: int, hour: float, budget: int, budget_off: bool) -> Run:
    emulator_settings = EmulatorSettings(
        validating_seconds=10 * hour, in_progress_seconds=10 * hour, create_limit=budget, create_window=hour
    )
    daemon_settings = {
        "poll_interval": 60,
        "first_poll_after": 60,
        "scan_interval": 1,
        "min_file_age": 1,
        "creation_budget": OFF if budget_off else budget,
        "creation_window": hour,
        "pack_wait": PACK_WAIT,
        "pack_wait_max": PACK_WAIT_MAX,
    }
    root = scratch()
    try:
        staging, names = stage(root, files)
        with EmulatorServer(emulator_settings) as emulator:
            with DaemonProcess(root, emulator.base_url, daemon_settings) as daemon:
                try:
                    daemon.wait_for_event("daemon_started", timeout=STARTUP_TIMEOUT)
                    dropped = trickle(staging, root / "pending_upload", names, hour)
                    created = wait_all_created(daemon, root, names, timeout=hour + 2 * PACK_WAIT_MAX)
                except BaseException:
                    show_log_tail(daemon.log_path)
                    raise
            calls = emulator.calls.entries()
            statuses = [c.status for c in calls if c.method == "POST" and c.route == "/v1/batches"]
            busiest = busiest_window([float(b["created_at"]) for b in emulator.batches()], hour)
        latencies = [created[n] - dropped[n] for n in names]
        return Run(statuses.count(200), statuses.count(429), busiest, latencies)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def busiest_window(times: list[float], window: float) -> int:
    """The most creates within any span of ``window`` seconds."""
    ordered, most, first = sorted(times), 0, 0
    for last, t in enumerate(ordered):
        while t - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most


def wait_all_created(daemon: DaemonProcess, root: Path, names: list[str], timeout: float) -> dict[str, float]:
    times = BatchTimes(root / "state" / folders.DB_NAME)
    created: dict[str, float] = {}
    try:

        def done() -> bool:
            if not daemon.running():
                raise RuntimeError("the daemon exited while the benchmark waited for batches")
            created.update(times.read())
            return all(n in created for n in names)

        wait_until(done, timeout, "every input's batch", every=WATCH_EVERY)
    finally:
        times.close()
    return created


def report(run: Run, files: int, hour: float, budget: int, budget_off: bool) -> None:
    label = "off (a baseline)" if budget_off else "on"
    print(f"{files:,} small files, {hour / files:.2f} s apart, over an hour scaled to {hour:g} s")
    print(f"creates allowed per {hour:g} s: {budget:,}")
    print(f"the daemon's creation budget: {label}")
    print(f"batches created: {run.creates:,} in all, {run.busiest:,} in the busiest window; 429s: {run.refused:,}")
    lat = run.latencies
    print(
        f"rename to batch created: p50 {percentile(lat, 50):.2f} s, p95 {percentile(lat, 95):.2f} s, "
        f"max {max(lat):.2f} s (the bound on waiting for company: {PACK_WAIT_MAX:g} s)"
    )
    share = run.refused / max(1, run.creates)
    print(verdict(run.busiest <= budget, f"creates in any window {run.busiest:,} <= budget {budget:,}"))
    print(verdict(share <= MAX_429_SHARE, f"429s {share:.2%} of creates <= {MAX_429_SHARE:.0%}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=30.0, help="divide the hour, its files and budget (default 30)")
    parser.add_argument("--budget-off", action="store_true", help="the daemon ignores the budget (a baseline)")
    args = parser.parse_args()
    if args.scale < 1:
        parser.error("--scale must be 1 (the real hour) or more")
    files, budget = round(FILES_PER_HOUR / args.scale), round(BUDGET_PER_HOUR / args.scale)
    hour = REAL_HOUR / args.scale
    run = measure(files, hour, budget, args.budget_off)
    report(run, files, hour, budget, args.budget_off)


if __name__ == "__main__":
    main()
