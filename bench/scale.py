"""10,000 tracked batches: does the daemon slow down? Start-up, `batchd status`, one poll cycle.

A state DB is seeded with 10,000 ACTIVE jobs, each with one SUBMITTED part whose batch exists (and
stays `validating`) in the emulator on 127.0.0.1, so polls get real answers. Each figure is shown
next to the same measurement on an empty state DB.
Run: .venv/bin/python -m bench.scale [--batches 10000]
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import scratch, verdict
from bench.daemon_process import DaemonProcess
from bench.tracked import (
    api_calls,
    build_poller,
    calls_by_route,
    create_remote_batches,
    open_state,
    root_settings,
    seed_state,
)
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.logs import configure
from tests.support import service_env

EMULATOR = EmulatorSettings(validating_seconds=86_400)
STARTUP_LIMIT = 2.0
STATUS_LIMIT = 1.0
MAX_POLLS = 100  # bounds the full-cycle loop (10,000 batches need 10 at today's 1,000 per poll)


def time_status(root: Path, base_url: str) -> tuple[float, int]:
    """`batchd status` as a user runs it: (seconds, rows printed)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "status", "--root", str(root)],
        env=service_env(base_url, {}),
        capture_output=True,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - start, max(0, len(done.stdout.splitlines()) - 1)


def time_startup(root: Path, base_url: str) -> tuple[float, float]:
    """(spawn to `daemon_started`, SIGTERM to exit) of the real daemon, in seconds."""
    with DaemonProcess(root, base_url, {"scan_interval": 5}) as daemon:
        started = daemon.wait_for_event("daemon_started", timeout=120) - daemon.started_at
        stop_start = time.monotonic()
        daemon.stop()
        return started, time.monotonic() - stop_start


def poll_cycle(root: Path, server: EmulatorServer) -> None:
    """The first poll_once (what the poller does in one pass), then passes until every batch was refreshed."""
    settings = root_settings(root, server.base_url)
    store = open_state(settings)
    poller, remote = build_poller(settings, store)
    now = time.time() + 2 * settings.poll_interval  # every part is due
    try:
        passes: list[tuple[int, int, float]] = []
        for _ in range(MAX_POLLS):
            server.calls.clear()
            start = time.perf_counter()
            refreshed = poller.poll_once(now)
            if not refreshed:
                break
            passes.append((refreshed, api_calls(server), time.perf_counter() - start))
            if len(passes) == 1:
                print(f"  first pass calls: {calls_by_route(server)}")
    finally:
        remote.close()
        store.close()
    show_cycle(passes)


def show_cycle(passes: list[tuple[int, int, float]]) -> None:
    first, total = passes[0], sum(p[0] for p in passes)
    calls, seconds = sum(p[1] for p in passes), sum(p[2] for p in passes)
    target = math.ceil(total / 100)
    print(f"scale, one poll pass: {first[0]} batches refreshed, {first[1]} API calls, {first[2]:.2f} s")
    cycle = f"{total} batches refreshed in {len(passes)} pass(es)"
    print(f"scale, full poll cycle: {cycle}, {calls} API calls, {seconds:.2f} s")
    print(verdict(calls <= target, f"{calls} calls per full cycle <= ceil({total}/100) = {target}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=10_000)
    args = parser.parse_args()
    configure("warning", "console")
    scratch_root = scratch()
    try:
        with EmulatorServer(EMULATOR) as server:
            run(scratch_root, server, args.batches)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def run(scratch_root: Path, server: EmulatorServer, count: int) -> None:
    empty, full = scratch_root / "empty", scratch_root / "full"
    for root in (empty, full):
        root.mkdir()
        open_state(root_settings(root, server.base_url)).close()
    start = time.perf_counter()
    batches = create_remote_batches(server, count)
    store = open_state(root_settings(full, server.base_url))
    seed_state(root_settings(full, server.base_url), store, batches)
    store.close()
    print(f"scale, setup: {count} batches in the emulator and the state DB in {time.perf_counter() - start:.1f} s")
    base_status, _ = time_status(empty, server.base_url)
    status, rows = time_status(full, server.base_url)
    print(f"scale, batchd status: {status:.2f} s for {rows} jobs (empty state: {base_status:.2f} s)")
    poll_cycle(full, server)
    base_start, base_stop = time_startup(empty, server.base_url)
    started, stopped = time_startup(full, server.base_url)
    print(f"scale, start-up to daemon_started: {started:.2f} s (empty state: {base_start:.2f} s)")
    print(f"scale, SIGTERM to exit: {stopped:.2f} s (empty state: {base_stop:.2f} s)")
    print(verdict(started < STARTUP_LIMIT, f"start-up {started:.2f} s < {STARTUP_LIMIT:.0f} s with {count} batches"))
    print(verdict(status < STATUS_LIMIT, f"batchd status {status:.2f} s < {STATUS_LIMIT:.0f} s with {count} batches"))


if __name__ == "__main__":
    main()
