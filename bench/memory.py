"""Peak RSS of the real daemon processing one input end to end (claim to results.jsonl written).

The daemon runs as a child process (`python -m daemon run`) against the emulator, which runs in
this process on 127.0.0.1. Peak RSS comes from the kernel: VmHWM read from /proc just before
SIGTERM, and ru_maxrss of that child from wait4 after it exits.
Run: .venv/bin/python -m bench.memory [--small-mb 20 --big-mb 200 --big-requests 50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import scratch, verdict
from bench.daemon_process import DaemonProcess
from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import request_line

RSS_LIMIT_MB = 150.0
GROWTH_LIMIT = 1.5
TIMEOUT = 900.0  # one input end to end; the 200 MB one takes about a minute on 2 cores
# Short lifecycle and polls: the figure is about memory, not waiting.
EMULATOR = EmulatorSettings(validating_seconds=0.2, in_progress_seconds=1.0, finalizing_seconds=0.2)
DAEMON = {"poll_interval": 1, "first_poll_after": 0.5, "scan_interval": 1, "min_file_age": 1}


@dataclass(frozen=True, slots=True)
class Run:
    size_mb: float
    requests: int
    parts: int
    seconds: float
    vmhwm_mb: float
    maxrss_mb: float
    result_lines: int


def write_sized(path: Path, count: int, target_bytes: int) -> int:
    """Write ``count`` chat requests padded so the file is just under ``target_bytes``; return its size."""
    longest = len(request_line(f"r{count - 1}")) + 2  # the newline and the filler's separating space
    pad = max(0, target_bytes // count - longest)
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(request_line(f"r{i}", pad=pad) + "\n" for i in range(count))
    return path.stat().st_size


def count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def measure(emulator: EmulatorServer, requests: int, megabytes: int) -> Run:
    root = scratch()
    try:
        staging = root / "staging"
        staging.mkdir()
        name = f"in{megabytes}mb.jsonl"
        size = write_sized(staging / name, requests, megabytes * 1_000_000)
        with DaemonProcess(root, emulator.base_url, DAEMON) as daemon:
            daemon.wait_for_event("daemon_started", timeout=60)
            start = time.monotonic()
            os.rename(staging / name, root / "pending_upload" / name)
            daemon.wait_for_event("job_done", timeout=TIMEOUT)
            seconds = time.monotonic() - start
            parts = sum(int(e.get("parts", 0)) for e in daemon.events("file_validated"))
            vmhwm = daemon.peak_rss_mb()
            exit_info = daemon.stop()
        lines = count_lines(root / "batch_results" / name.removesuffix(".jsonl") / "results.jsonl")
        return Run(size / 1e6, requests, parts, seconds, vmhwm, exit_info.max_rss_mb, lines)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def show(run: Run) -> None:
    print(
        f"memory, {run.size_mb:.1f} MB / {run.requests} requests ({run.parts} batch(es)): "
        f"peak RSS {run.vmhwm_mb:.1f} MB (VmHWM), {run.maxrss_mb:.1f} MB (wait4 ru_maxrss); "
        f"end to end {run.seconds:.1f} s; results.jsonl {run.result_lines} lines"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-mb", type=int, default=20)
    parser.add_argument("--small-requests", type=int, default=5_000)
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--big-requests", type=int, default=50_000)
    args = parser.parse_args()
    with EmulatorServer(EMULATOR) as emulator:
        small = measure(emulator, args.small_requests, args.small_mb)
        show(small)
        big = measure(emulator, args.big_requests, args.big_mb)
        show(big)
    peak_small = max(small.vmhwm_mb, small.maxrss_mb)
    peak_big = max(big.vmhwm_mb, big.maxrss_mb)
    ratio = peak_big / peak_small
    print(f"memory, peak RSS ratio {args.big_mb} MB / {args.small_mb} MB input: {ratio:.2f}")
    complete = small.result_lines == small.requests and big.result_lines == big.requests
    print(verdict(complete, "results.jsonl has one line per request for both inputs"))
    print(verdict(peak_big < RSS_LIMIT_MB, f"peak RSS {peak_big:.1f} MB < {RSS_LIMIT_MB:.0f} MB for the big input"))
    print(verdict(ratio < GROWTH_LIMIT, f"peak RSS grows {ratio:.2f}x < {GROWTH_LIMIT}x from small to big input"))


if __name__ == "__main__":
    main()
