"""API calls per poll cycle with many active batches, counted by the emulator on 127.0.0.1.

1,000 batches stay active (a day-long `validating`) and are tracked in a state DB seeded as the
submitter records them; the daemon's own Poller refreshes them (poll_once, every batch due).
Cycle 1: nothing changed. Cycle 2: N batches changed state (cancelled in the emulator meanwhile).
Cycle 3: an account shared with another client: a few tracked batches among many newer ones.
Run: .venv/bin/python -m bench.poll_calls [--active 1000 --changed 50 --foreign 2000]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.common import scratch, verdict
from bench.tracked import (
    api_calls,
    build_poller,
    call_target,
    calls_by_route,
    create_remote_batches,
    open_state,
    root_settings,
    seed_state,
)
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.logs import configure
from daemon.service.poller import Poller
from daemon.state.states import PartState

# Batches stay `validating` for a day unless cancelled; a cancel ends at once (a state change).
EMULATOR = EmulatorSettings(validating_seconds=86_400, cancelling_seconds=0)
SHARED_TRACKED = 5


def cycle(server: EmulatorServer, poller: Poller, now: float) -> tuple[int, int, float]:
    """One poll_once with every batch due: (batches refreshed, API calls, seconds)."""
    server.calls.clear()
    start = time.perf_counter()
    refreshed = poller.poll_once(now)
    return refreshed, api_calls(server), time.perf_counter() - start


def report(label: str, server: EmulatorServer, result: tuple[int, int, float], changed: int) -> None:
    refreshed, calls, seconds = result
    target = call_target(refreshed, changed)
    print(f"poll cycle, {label}: {refreshed} batches refreshed, {calls} API calls in {seconds:.2f} s")
    print(f"  calls: {calls_by_route(server)}")
    print(verdict(calls <= target, f"{calls} calls <= ceil({refreshed}/100) + {changed} changed = {target}"))


def many_active(root: Path, active: int, changed: int) -> None:
    with EmulatorServer(EMULATOR) as server:
        settings = root_settings(root, server.base_url)
        store = open_state(settings)
        batches = create_remote_batches(server, active)
        seed_state(settings, store, batches)
        poller, remote = build_poller(settings, store)
        try:
            now = time.time() + 2 * settings.poll_interval  # every part is due
            report(f"{active} active, none changed", server, cycle(server, poller, now), 0)
            step = max(1, active // max(1, changed))
            for batch in batches[::step][:changed]:
                server.store.cancel_batch(batch["id"])  # directly in the store: not an API call
            now += 2 * settings.poll_interval
            result = cycle(server, poller, now)
            finished = len(store.parts_in([PartState.FINISHED]))
            report(f"{active} active, {changed} changed ({finished} now finished)", server, result, changed)
        finally:
            remote.close()
            store.close()


def shared_account(root: Path, foreign: int) -> None:
    """A few tracked batches, then ``foreign`` newer ones from another client of the same account."""
    with EmulatorServer(EMULATOR) as server:
        settings = root_settings(root, server.base_url)
        store = open_state(settings)
        tracked = create_remote_batches(server, SHARED_TRACKED)
        create_remote_batches(server, foreign)
        seed_state(settings, store, tracked)
        poller, remote = build_poller(settings, store)
        try:
            refreshed, calls, seconds = cycle(server, poller, time.time() + 2 * settings.poll_interval)
        finally:
            remote.close()
            store.close()
    print(
        f"poll cycle, shared account ({refreshed} tracked among {foreign} newer batches of another client): "
        f"{calls} API calls in {seconds:.2f} s"
    )
    print(verdict(calls <= refreshed, f"{calls} calls <= {refreshed} (one retrieve per tracked batch)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--changed", type=int, default=50)
    parser.add_argument("--foreign", type=int, default=2000, help="newer batches of another client (0: skip)")
    args = parser.parse_args()
    configure("warning", "console")
    scratch_root = scratch()
    try:
        (scratch_root / "many").mkdir()
        many_active(scratch_root / "many", args.active, args.changed)
        if args.foreign:
            (scratch_root / "shared").mkdir()
            shared_account(scratch_root / "shared", args.foreign)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


if __name__ == "__main__":
    main()
