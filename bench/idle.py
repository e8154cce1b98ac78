"""An idle daemon sleeps: wake-ups per second (all its threads) and CPU share, read from /proc.

The real daemon runs in its own process against the emulator in this one; once it has started and
settled, the kernel's counters are read at the start and the end of a window: context switches
(voluntary + nonvoluntary, summed over /proc/PID/task/*/status) and CPU time (utime + stime from
/proc/PID/stat). Two runs: an empty state, and 10,000 tracked batches each waiting on a long poll
interval (seeded as bench/scale.py does). The machine may be shared: the figures are noisy.
Run: .venv/bin/python -m bench.idle [--seconds 60] [--batches 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import scratch, verdict
from bench.daemon_process import DaemonProcess
from bench.tracked import create_remote_batches, open_state, root_settings, seed_state
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.logs import configure
from daemon.state import folders

EMULATOR = EmulatorSettings(validating_seconds=86_400)
LONG_POLL = 3600.0  # every tracked batch waits this long for its next status check
MAX_WAKEUPS = 1.0  # per second, all threads together
MAX_CPU = 0.05  # percent of one core
SETTLE = 5.0  # seconds after `daemon_started` before the window opens


@dataclass(frozen=True, slots=True)
class Counters:
    switches: int  # voluntary + nonvoluntary context switches, all threads
    cpu_ticks: int  # utime + stime, in clock ticks
    threads: int
    by_thread: dict[int, int]  # thread id -> its switches


def busiest(before: Counters, after: Counters, pid: int) -> str:
    """The threads that woke most in the window (the main thread's id is the process id)."""
    deltas = {tid: n - before.by_thread.get(tid, 0) for tid, n in after.by_thread.items()}
    top = sorted(deltas.items(), key=lambda item: -item[1])[:4]
    return ", ".join(f"{'main' if tid == pid else tid}: {n}" for tid, n in top)


def read_counters(pid: int) -> Counters:
    by_thread: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text(encoding="ascii")
        except FileNotFoundError:  # the thread ended while we looked
            continue
        lines = status.splitlines()
        by_thread[int(task.name)] = sum(
            int(line.split()[1])
            for line in lines
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"))
        )
    # The command name may hold spaces: the fields after it start after the last ')'.
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    cpu = int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of stat(5)
    return Counters(sum(by_thread.values()), cpu, len(by_thread), by_thread)


def measure(root: Path, base_url: str, seconds: float, label: str) -> tuple[float, float]:
    """Start the daemon on ``root``, let it settle, and return (wake-ups per second, CPU %) over ``seconds``."""
    settings = {"poll_interval": LONG_POLL, "first_poll_after": 5}
    with DaemonProcess(root, base_url, settings) as daemon:
        daemon.wait_for_event("daemon_started", timeout=120)
        threading.Event().wait(SETTLE)
        before, start = read_counters(daemon.pid), time.monotonic()
        threading.Event().wait(seconds)
        after, elapsed = read_counters(daemon.pid), time.monotonic() - start
        exit_code = daemon.stop().code
    wakeups = (after.switches - before.switches) / elapsed
    cpu = (after.cpu_ticks - before.cpu_ticks) / os.sysconf("SC_CLK_TCK") / elapsed * 100
    print(f"idle, {label}: {wakeups:.2f} wake-ups/s, {cpu:.3f}% of a core over {elapsed:.0f} s")
    print(f"idle, {label}: {after.threads} threads, exit code {exit_code} after SIGTERM")
    print(f"idle, {label}: switches of the busiest threads: {busiest(before, after, daemon.pid)}")
    print(verdict(wakeups <= MAX_WAKEUPS, f"{label}: {wakeups:.2f} wake-ups/s <= {MAX_WAKEUPS:.0f}"))
    print(verdict(cpu <= MAX_CPU, f"{label}: {cpu:.3f}% of a core <= {MAX_CPU}%"))
    return wakeups, cpu


def seed_waiting(root: Path, server: EmulatorServer, count: int) -> None:
    """``count`` tracked batches, each checked a moment ago and next due in LONG_POLL seconds."""
    settings = root_settings(root, server.base_url)
    store = open_state(settings)
    try:
        seed_state(settings, store, create_remote_batches(server, count))
    finally:
        store.close()
    due = time.time() + LONG_POLL
    with sqlite3.connect(settings.state / folders.DB_NAME) as conn:
        conn.execute("UPDATE parts SET poll_wait = ?, next_action_at = ?", (LONG_POLL, due))
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each measuring window")
    parser.add_argument("--batches", type=int, default=10_000, help="tracked batches of the second run")
    args = parser.parse_args()
    configure("warning", "console")
    scratch_root = scratch()
    try:
        with EmulatorServer(EMULATOR) as server:
            empty, tracked = scratch_root / "empty", scratch_root / "tracked"
            empty.mkdir()
            tracked.mkdir()
            measure(empty, server.base_url, args.seconds, "no work")
            seed_waiting(tracked, server, args.batches)
            measure(tracked, server.base_url, args.seconds, f"{args.batches} tracked batches")
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


if __name__ == "__main__":
    main()
