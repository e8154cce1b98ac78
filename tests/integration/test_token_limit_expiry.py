"""A learned enqueued-token limit goes stale, end to end: the real daemon, a state holding a limit
learned earlier, and the emulator whose limit is higher now (the account's tier rose). A limit older
than token_limit_ttl caps nothing: the input goes in one batch the service takes. A fresh one still
splits the input to fit before anything is sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service import holds
from daemon.state import folders
from daemon.state.states import PartState
from daemon.state.store import Store
from daemon.state.token_limits import learned_limit_of, record_limit
from tests.support import FAST, Harness, fast_settings, request_line

MODEL = "gpt-4o-mini"
TTL = 7 * 86400.0
LEARNED = 50  # learned earlier: about one request line by batchd's estimate
RAISED = 10_000  # the account's limit now
MESSAGE = f"Enqueued token limit reached for {MODEL} in organization org-x. Limit: {LEARNED} enqueued tokens."
IDS = [f"r{i}" for i in range(6)]


@pytest.fixture(autouse=True)
def _quick_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A part waiting for room under the fresh limit is looked at again after a quarter of this.
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", 0.4)


@pytest.fixture(name="server")
def server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, token_limit=RAISED, data_dir=tmp_path / "emulator")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def _daemon(tmp_path: Path, server: EmulatorServer, learned_ago: float) -> Harness:
    """A daemon whose state learned LEARNED ``learned_ago`` seconds ago."""
    root = tmp_path / "root"
    root.mkdir()
    harness = Harness(fast_settings(root, server.base_url, token_limit_ttl=TTL), server)
    folders.prepare(harness.settings)
    store = Store(harness.settings.state / folders.DB_NAME)
    record_limit(store, MODEL, "default", LEARNED, MESSAGE, time.time() - learned_ago)
    store.close()
    return harness


@pytest.mark.parametrize(("learned_ago", "batches"), [(TTL + 3600, 1), (TTL - 3600, len(IDS))])
def test_a_stale_limit_caps_nothing_and_a_fresh_one_still_splits(
    tmp_path: Path, server: EmulatorServer, learned_ago: float, batches: int
) -> None:
    daemon = _daemon(tmp_path, server, learned_ago)
    try:
        daemon.start().drop("big.jsonl", "".join(request_line(i, model=MODEL) + "\n" for i in IDS))
        daemon.wait_job("big.jsonl", timeout=30)
        assert [r["custom_id"] for r in daemon.results("big.jsonl")] == IDS
        statuses = [b["status"] for b in server.batches()]
        assert statuses == ["completed"] * batches, "nothing refused; split only while the limit is fresh"
        assert daemon.store is not None
        parts = daemon.store.parts(daemon.job("big.jsonl").id)  # type: ignore[union-attr]
        assert sum(p.state == PartState.DOWNLOADED for p in parts) == batches
        learned = learned_limit_of(daemon.store, MODEL)
        assert learned is not None and learned.limit == LEARNED, "kept (listed as expired) until named again"
    finally:
        daemon.stop()
