"""Helpers of the benchmarks alone: request files of a given size, scratch folders, percentiles, verdicts.

What the tests share with the benchmarks (request lines, condition waits, the daemon's environment) is in
tests/support.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.support import request_line


def write_requests(path: Path, count: int, pad: int = 0, prefix: str = "r") -> int:
    """Write ``count`` chat requests, each padded by ``pad`` characters; return the file's size."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(request_line(f"{prefix}{i}", pad=pad) + "\n" for i in range(count))
    return path.stat().st_size


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="batchd-bench-"))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def verdict(ok: bool, target: str) -> str:
    """The line each benchmark prints per target."""
    return f"{'PASS' if ok else 'MISS'}: {target}"
