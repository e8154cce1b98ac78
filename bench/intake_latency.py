"""Intake latency (rename into pending_upload/ to batch created) and time to submit N files.

Runs the real engine in this process against the emulator on 127.0.0.1.
Run: .venv/bin/python -m bench.intake_latency [--files 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import threading
import time

from bench.common import percentile, scratch, wait_for, write_requests
from daemon import folders
from daemon.config import Settings
from daemon.credentials import KeySource
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.engine import Engine
from daemon.logs import configure
from daemon.remote import Remote, build_client
from daemon.signals import StopFlags
from daemon.states import PartState
from daemon.store import Store


def measure(files: int, emulator: EmulatorServer) -> tuple[list[float], float]:
    root = scratch()
    settings = Settings(root=root, base_url=emulator.base_url, poll_interval=5, first_poll_after=5, scan_interval=1)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    remote = Remote(build_client(KeySource("bench", value="bench-key"), settings.base_url, 30))
    flags = StopFlags()
    engine = Engine(dataclasses.replace(settings), store, remote, flags)
    engine.start()
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        staging = root / "staging"
        staging.mkdir()
        for i in range(files):
            write_requests(staging / f"f{i}.jsonl", count=5, prefix=f"f{i}-")
        dropped: dict[str, float] = {}
        start = time.monotonic()
        for i in range(files):
            os.rename(staging / f"f{i}.jsonl", settings.pending / f"f{i}.jsonl")
            dropped[f"f{i}.jsonl"] = time.monotonic()
        # Watch through a second, read-only connection, now and then: the daemon's own store
        # connection is behind one lock, and a benchmark hammering it would slow what it measures.
        watcher = Store(settings.state / folders.DB_NAME, readonly=True)
        try:
            wait_for(
                lambda: len(watcher.parts_in([PartState.SUBMITTED, PartState.FINISHED, PartState.DOWNLOADED])) >= files,
                timeout=600,
                every=0.1,
            )
        finally:
            watcher.close()
        total = time.monotonic() - start
        latencies = [(p.submitted_at or 0) - _wall(dropped, store, p.job_id) for p in store.parts_in(list(PartState))]
        return latencies, total
    finally:
        flags.stop.set()
        thread.join(10)
        engine.shutdown()
        store.close()
        remote.close()
        shutil.rmtree(root, ignore_errors=True)


def _wall(dropped: dict[str, float], store: Store, job_id: str) -> float:
    # submitted_at is wall-clock; convert the monotonic drop time to wall-clock for the difference.
    job = store.job(job_id)
    return time.time() - (time.monotonic() - dropped[job.source_name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    configure("warning", "console")
    with EmulatorServer(EmulatorSettings(validating_seconds=60, in_progress_seconds=60)) as emulator:
        for n in (1, args.files):
            latencies, total = measure(n, emulator)
            print(
                f"intake, {n} file(s): p50 {percentile(latencies, 50):.3f} s, p95 {percentile(latencies, 95):.3f} s, "
                f"all submitted in {total:.2f} s"
            )


if __name__ == "__main__":
    main()
