"""A trickle of small files against an emulator that allows few batch creations per window: the
daemon's creation budget makes them wait for company, so the emulator never answers 429."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState
from tests.support import FAST, Harness, fast_settings, request_file

LIMIT, WINDOW = 8, 30.0  # creates per window, on both sides
FILES = 16  # twice the limit: one batch each would meet 429s


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator-data", create_limit=LIMIT, create_window=WINDOW)  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def test_a_trickle_of_small_files_stays_within_the_creation_limit(limited: EmulatorServer, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings = fast_settings(
        root, limited.base_url, creation_budget=LIMIT, creation_window=WINDOW, pack_wait=0.5, pack_wait_max=3.0
    )
    harness = Harness(settings, limited).start()
    try:
        names = [f"t{i}.jsonl" for i in range(FILES)]
        for name in names:  # one at a time: each is checked before the next arrives, alone in the queue
            harness.drop(name, request_file(2, prefix=name))
            harness.wait_job(name, JobState.ACTIVE, JobState.DONE, timeout=30.0)
        for name in names:
            harness.wait_job(name, JobState.DONE, timeout=60.0)
            assert len(harness.results(name)) == 2
    finally:
        harness.stop()
    creates = [c.status for c in limited.calls.entries() if c.method == "POST" and c.route == "/v1/batches"]
    assert 429 not in creates
    assert len(limited.batches()) < FILES  # some shared a batch
