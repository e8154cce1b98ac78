"""Validation throughput on one core: MB/s over a generated request file.

Run: .venv/bin/python -m bench.validation_speed [--mb 100]
"""

from __future__ import annotations

import argparse
import shutil
import time

from bench.common import scratch, verdict, write_requests
from daemon.intake.validation import validate_file

TARGET_MB_S = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="approximate input size in MB")
    args = parser.parse_args()
    folder = scratch()
    try:
        path = folder / "in.jsonl"
        size = write_requests(path, count=args.mb * 1000, pad=900)
        start = time.perf_counter()
        findings = validate_file(path)
        elapsed = time.perf_counter() - start
        assert findings.ok, findings.problems[:3]
        rate = size / 1e6 / elapsed
        print(f"validation: {size / 1e6:.0f} MB, {findings.requests} requests in {elapsed:.2f} s = {rate:.0f} MB/s")
        print(verdict(rate >= TARGET_MB_S, f"validation {rate:.0f} MB/s >= {TARGET_MB_S:.0f} MB/s on one core"))
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
