"""Thousands of idle and slow connections against the daemon's metrics and webhook listeners.

The daemon runs as its own process with both endpoints on; this process holds ``--connections``
connections to each (every other one sends half a request and stops), then, while they are held:
counts the daemon's threads and open sockets from /proc, times a metrics scrape and a signed webhook
delivery, and drops a small input and times it to its results. Last, a slow-loris client sends one
byte a second and is timed until the daemon hangs up (its request deadline is 10 s).

Run: .venv/bin/python -m bench.listeners [--connections 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import scratch, verdict
from bench.daemon_process import DaemonProcess
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.http_listener import MAX_CONNECTIONS, REQUEST_DEADLINE
from tests.integration.test_webhooks import SECRET, deliver, event
from tests.support import FAST_DAEMON, request_file, scrape

PARTIAL = b"POST /webhooks HTTP/1.1\r\nHost: x\r\nX-Slow: "
EMULATOR = EmulatorSettings(validating_seconds=0.1, in_progress_seconds=0.5, finalizing_seconds=0.1)
THREAD_SLACK = 2  # e.g. a thread of the SDK's connection pool: not one per client connection
SCRAPE_TARGET = 1.0  # seconds for a scrape while the flood is held
INPUT_TARGET = 15.0  # seconds for a 3-request input to reach its results while the flood is held


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def sockets(pid: int) -> int:
    """Open sockets of ``pid``: its descriptors that point at a socket."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def flood(port: int, count: int) -> list[socket.socket]:
    held = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(PARTIAL)
        held.append(sock)
    return held


def slow_loris(port: int, limit: float) -> tuple[float, int]:
    """Send a byte a second until the server hangs up; (seconds it took, bytes sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < limit:
            try:
                sock.sendall(PARTIAL if not sent else b"x")
                sent += 1
                if not sock.recv(1):  # waits up to a second, and sees the hang-up the moment it comes
                    break
            except TimeoutError:
                continue
            except OSError:
                break
        return time.monotonic() - started, sent


def raise_descriptor_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, allowed), hard))
    return allowed


@dataclass
class Figures:
    threads_before: int = 0
    sockets_before: int = 0
    threads_held: int = 0  # the most seen while the connections were held
    sockets_held: int = 0
    scrape_s: float = 0.0
    scraped: int = 0  # samples
    hook: tuple[int, dict[str, Any]] = (0, {})
    input_s: float = 0.0
    cut_s: float = 0.0
    sent: int = 0

    def sample(self, pid: int) -> None:
        self.threads_held = max(self.threads_held, threads(pid))
        self.sockets_held = max(self.sockets_held, sockets(pid))


def run(root: Path, emulator: EmulatorServer, count: int) -> Figures:
    metrics_port, webhook_port = free_port(), free_port()
    settings = {**FAST_DAEMON, "metrics_port": metrics_port, "webhook_port": webhook_port}
    figures = Figures()
    with DaemonProcess(root, emulator.base_url, settings, env={"OPENAI_WEBHOOK_SECRET": SECRET}) as daemon:
        daemon.wait_for_event("daemon_started", timeout=60)
        figures.threads_before, figures.sockets_before = threads(daemon.pid), sockets(daemon.pid)
        held = [*flood(metrics_port, count), *flood(webhook_port, count)]
        try:
            figures.sample(daemon.pid)
            serve_meanwhile(root, daemon, figures, metrics_port, webhook_port)
        finally:
            for sock in held:
                sock.close()
        figures.cut_s, figures.sent = slow_loris(webhook_port, REQUEST_DEADLINE + 10)
    return figures


def serve_meanwhile(root: Path, daemon: DaemonProcess, figures: Figures, metrics_port: int, webhook_port: int) -> None:
    started = time.monotonic()
    figures.scraped = len(scrape(metrics_port))
    figures.scrape_s = time.monotonic() - started
    figures.sample(daemon.pid)
    figures.hook = deliver(webhook_port, event("batch_nobody_knows"))
    (root / "pending_upload" / ".busy.tmp").write_text(request_file(3))
    started = time.monotonic()
    os.rename(root / "pending_upload" / ".busy.tmp", root / "pending_upload" / "busy.jsonl")
    daemon.wait_for_event("job_done", timeout=60)
    figures.input_s = time.monotonic() - started
    figures.sample(daemon.pid)


def report(f: Figures, count: int) -> None:
    extra = f.sockets_held - f.sockets_before
    print(f"listeners, {count} idle and slow connections held against each of metrics and webhooks:")
    print(f"  daemon threads: {f.threads_before} before, at most {f.threads_held} while held")
    print(f"  daemon sockets: {f.sockets_before} before, at most {f.sockets_held} while held (+{extra})")
    print(f"  meanwhile: scrape {f.scrape_s:.3f} s ({f.scraped} samples), webhook {f.hook}")
    print(f"  meanwhile: a 3-request input to its results in {f.input_s:.1f} s")
    print(f"  slow loris (a byte a second): cut off after {f.cut_s:.1f} s and {f.sent} bytes")
    bound = f.threads_before + THREAD_SLACK
    print(verdict(f.threads_held <= bound, f"threads {f.threads_held} <= {bound} with {2 * count} connections held"))
    print(verdict(extra <= 2 * MAX_CONNECTIONS, f"sockets held +{extra} <= {2 * MAX_CONNECTIONS} (two caps)"))
    served = f.scraped > 0 and f.scrape_s <= SCRAPE_TARGET and f.hook == (200, {"status": "unknown"})
    print(
        verdict(served, f"scrape {f.scrape_s:.3f} s <= {SCRAPE_TARGET:.0f} s and a signed webhook answered meanwhile")
    )
    print(verdict(f.input_s <= INPUT_TARGET, f"an input done in {f.input_s:.1f} s <= {INPUT_TARGET:.0f} s meanwhile"))
    limit = REQUEST_DEADLINE + 1.5
    print(verdict(f.cut_s <= limit, f"slow loris cut off after {f.cut_s:.1f} s <= {limit:.1f} s (deadline + 1.5 s)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=2000, help="held against each listener (default 2000)")
    args = parser.parse_args()
    allowed = raise_descriptor_limit(2 * args.connections + 256)
    count = min(args.connections, (allowed - 256) // 2)
    if count < args.connections:
        print(f"listeners: only {allowed} descriptors allowed here, so {count} connections each")
    root = scratch()
    try:
        with EmulatorServer(EMULATOR) as emulator:
            report(run(root, emulator, count), count)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
