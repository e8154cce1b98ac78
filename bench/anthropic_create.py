"""Memory of creating one Message Batch of 256 MB (kind anthropic): the part file is streamed as the body.

A part file of ``--mb`` MB (``--requests`` Message Batches lines, padded to size) is sent through
``AnthropicService.create_batch`` to a sink on 127.0.0.1 that reads the body in 64 KB pieces as it
arrives, counts its bytes and answers with a batch. Measured: the peak of Python allocations during the call
(tracemalloc) and the process's peak RSS growth (VmHWM, reset before the call). The figures are of
the client alone; the machine is shared, so timings are noisy.
Run: .venv/bin/python -m bench.anthropic_create [--mb 256 --requests 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import scratch, verdict
from daemon.providers import KIND_DEFAULTS
from daemon.service.anthropic_service import AnthropicService
from daemon.service.credentials import KeySource

PEAK_LIMIT_MB = 32.0  # a 256 MB body must not be held: a few MB of chunks at most
BATCH = {
    "id": "msgbatch_bench",
    "type": "message_batch",
    "processing_status": "in_progress",
    "request_counts": {"processing": 1, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": "2025-01-02T00:00:00Z",
    "ended_at": None,
    "cancel_initiated_at": None,
    "results_url": None,
}


def write_part(path: Path, mb: int, requests: int) -> int:
    """``requests`` lines of about ``mb`` MB in all; the file's size."""
    pad = max(0, mb * 1_000_000 // requests - 140)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(requests):
            params = {"model": "claude-test", "max_tokens": 16, "messages": [{"role": "user", "content": "x" * pad}]}
            fh.write(json.dumps({"custom_id": f"r{i}", "params": params}) + "\n")
    return path.stat().st_size


class Sink(BaseHTTPRequestHandler):
    """Reads a POST body piece by piece, holding none of it; answers with a Message Batch."""

    received = 0

    def do_POST(self) -> None:
        left = int(self.headers["content-length"])
        while left > 0:
            piece = self.rfile.read(min(left, 1 << 16))
            if not piece:
                break
            left -= len(piece)
            Sink.received += len(piece)
        body = json.dumps(BATCH).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_vmhwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS to the current RSS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    folder = scratch()
    try:
        part = folder / "0.jsonl"
        size = write_part(part, args.mb, args.requests)
        sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{sink.server_address[1]}"
        profile = dataclasses.replace(KIND_DEFAULTS["anthropic"], name="bench", base_url=url)
        service = AnthropicService.for_profile(profile, KeySource("bench", value="k"), 600)
        reset_vmhwm()
        before = vmhwm_mb()
        tracemalloc.start()
        started = time.monotonic()
        service.create_batch(service.upload(part, "0"), "/v1/messages", "24h", {}, None)
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        growth = vmhwm_mb() - before
        service.close()
        sink.shutdown()
        received = Sink.received
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak_mb = peak / 1e6
    print(f"part file: {size / 1e6:.1f} MB, {args.requests} requests; body sent: {received / 1e6:.1f} MB")
    print(f"create: {seconds:.1f} s; peak Python allocations {peak_mb:.1f} MB; peak RSS growth {growth:.1f} MB")
    print(
        verdict(
            peak_mb < PEAK_LIMIT_MB and received >= size - args.requests,
            f"create of {size / 1e6:.0f} MB holds < {PEAK_LIMIT_MB:.0f} MB",
        )
    )


if __name__ == "__main__":
    main()
