"""Helpers shared by the benchmarks: request files of a given size, a daemon on a thread."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_requests(path: Path, count: int, pad: int = 0, prefix: str = "r") -> int:
    """Write ``count`` chat requests, each padded by ``pad`` characters; return the file's size."""
    filler = "x" * pad
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(count):
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i} {filler}"}]}
            fh.write(
                json.dumps({"custom_id": f"{prefix}{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            fh.write("\n")
    return path.stat().st_size


def wait_for(predicate: Callable[[], Any], timeout: float, every: float = 0.005) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        pause.wait(every)


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="batchd-bench-"))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def verdict(ok: bool, target: str) -> str:
    """The line each benchmark prints per target."""
    return f"{'PASS' if ok else 'MISS'}: {target}"
