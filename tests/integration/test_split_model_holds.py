"""An input split by model (split_by_model) meets one model's enqueued-token limit: that model's
refused batch learns the limit for that model, waits for room in that model's queue and goes again
once; the other model's batch is not held by it, and the input completes in input order."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service import holds
from daemon.state.token_limits import known_limit
from tests.support import FAST, Harness, fast_settings, request_line

MINI, FULL = "gpt-4o-mini", "gpt-4o"
ORDER = [MINI, FULL, MINI, MINI, FULL, MINI, MINI, MINI]  # MINI: two batches of 3; FULL: one of 2
PER_BATCH = 3
LINES = [request_line(f"q{n}", model=model) + "\n" for n, model in enumerate(ORDER)]
# One MINI batch fits MINI's queue, two at once do not: the second is refused while the first runs.
LIMIT = 3 * max(len(line) // 4 for line in LINES) * 3 // 2


@pytest.fixture(autouse=True)
def _quick_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", 0.4)  # then the part waits for room, looked at often


@pytest.fixture(name="server")
def server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    # Batches run 2 s: the first MINI batch is still queued when the second is validated. The emulator
    # counts a request's body only, half of batchd's estimate for the whole line: weighed twice, a batch
    # weighs about what batchd estimates.
    timing = {**FAST, "in_progress_seconds": 2.0}
    settings = EmulatorSettings(
        **timing,  # type: ignore[arg-type]
        token_limit=LIMIT,
        token_weight=2.0,
        data_dir=tmp_path / "emulator",
    )
    with EmulatorServer(settings) as server:
        yield server


def refused(server: EmulatorServer) -> list[dict[str, Any]]:
    return [b for b in server.batches() if b["status"] == "failed"]


def batch_model(server: EmulatorServer, batch: dict[str, Any]) -> str:
    first = server.file_bytes(batch["input_file_id"]).splitlines()[0]
    return str(json.loads(first)["body"]["model"])


def test_one_models_full_queue_holds_only_that_models_batch(tmp_path: Path, server: EmulatorServer) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings = fast_settings(root, server.base_url, split_by_model=True, max_requests_per_batch=PER_BATCH)
    daemon = Harness(settings, server).start()
    try:
        daemon.drop("mixed.jsonl", "".join(LINES))
        job = daemon.wait_job("mixed.jsonl", timeout=60)
        assert daemon.store is not None
        assert known_limit(daemon.store, MINI) == LIMIT, "learned for the refused batch's own model"
        assert known_limit(daemon.store, FULL) is None
        results = daemon.results("mixed.jsonl")
        parts = daemon.store.parts(job.id)
    finally:
        daemon.stop()
    (once,) = refused(server)
    assert batch_model(server, once) == MINI and once["errors"]["data"][0]["code"] == "token_limit_exceeded"
    assert "".join(sorted(p.model or "" for p in parts if p.batch_id)) == FULL + MINI + MINI
    completed = [b for b in server.batches() if b["status"] == "completed"]
    assert Counter(batch_model(server, b) for b in completed) == {MINI: 2, FULL: 1}
    assert [r["custom_id"] for r in results] == [f"q{n}" for n in range(len(ORDER))], "input order"
    assert all(r["response"]["status_code"] == 200 for r in results)
