"""Faults on the wire, injected by the emulator, through the real engine: nothing lost, nothing doubled."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon import logs
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.calls import DROPPED
from daemon.service import holds, poller
from daemon.state.states import JobState
from tests.support import FAST, TEST_KEY, Harness, fast_settings, request_file, wait_until

CONTENT_ROUTE = "/v1/files/{file_id}/content"


def _parts_with_batches(emulator: EmulatorServer) -> Counter[tuple[str, str]]:
    """How many batches exist for each (job, part), from the metadata batchd puts on them."""
    return Counter((b["metadata"]["batchd_job"], b["metadata"]["batchd_part"]) for b in emulator.batches())


def _batch_files(emulator: EmulatorServer) -> list[dict[str, Any]]:
    return [f for f in emulator.files() if f["purpose"] == "batch"]


def _assert_results(harness: Harness, name: str, ids: list[str]) -> None:
    results = harness.results(name)
    assert [r["custom_id"] for r in results] == ids
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results)


def _timed_calls(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, str, int]]:
    """Record (monotonic time, method, route, status) of every call the emulator answers."""
    timed: list[tuple[float, str, str, int]] = []
    record = emulator.calls.record

    def timed_record(method: str, path: str, route: str, status: int) -> None:
        timed.append((time.monotonic(), method, route, status))
        record(method, path, route, status)

    monkeypatch.setattr(emulator.calls, "record", timed_record)
    return timed


@pytest.fixture(name="quick_poll_retry")
def quick_poll_retry_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    # After failed polls the poller waits 1 s, doubling up to ERROR_BACKOFF, before asking again.
    monkeypatch.setattr(poller, "FIRST_ERROR_BACKOFF", 0.1)
    monkeypatch.setattr(poller, "ERROR_BACKOFF", 0.2)


@pytest.mark.parametrize(
    ("path", "action"),
    [("/v1/batches", "status"), ("/v1/batches", "drop"), ("/v1/files", "status"), ("/v1/files", "drop")],
)
def test_response_lost_after_processing_never_duplicates(
    harness: Harness, emulator: EmulatorServer, path: str, action: str
) -> None:
    emulator.faults.add_rule(action=action, method="POST", path_prefix=path, status=500, after_processing=True)
    harness.drop("lost.jsonl", request_file(5))
    job = harness.wait_job("lost.jsonl")
    assert emulator.faults.fired == 1  # the call was carried out, and its answer lost
    _assert_results(harness, "lost.jsonl", [f"r{i}" for i in range(5)])
    assert len(emulator.batches()) == 1
    assert _parts_with_batches(emulator) == {(job.id, "0.0"): 1}
    assert 1 <= len(_batch_files(emulator)) <= 2  # a second upload costs nothing; a second batch would


def test_429_with_retry_after_is_waited_out(
    harness: Harness, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _timed_calls(emulator, monkeypatch)
    emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/batches", status=429, retry_after=1)
    harness.drop("busy.jsonl", request_file(3))
    job = harness.wait_job("busy.jsonl")
    _assert_results(harness, "busy.jsonl", ["r0", "r1", "r2"])
    creates = [(t, status) for t, method, route, status in calls if (method, route) == ("POST", "/v1/batches")]
    assert [status for _, status in creates] == [429, 200]
    assert creates[1][0] - creates[0][0] >= 0.95, "Retry-After: 1 was not honoured"
    assert _parts_with_batches(emulator) == {(job.id, "0.0"): 1}


def test_random_server_errors_everywhere(tmp_path: Path, quick_poll_retry: None) -> None:
    # The emulator's fault dice are seeded: with seed 7, six of the first 22 calls draw an error (a run
    # makes 35 or more), so the bound below is always spent. Seed 0 would draw none that early.
    noisy = EmulatorSettings(**FAST, seed=7, data_dir=tmp_path / "noisy-emulator")  # type: ignore[arg-type]
    with EmulatorServer(noisy) as emulator:
        (tmp_path / "root").mkdir()
        settings = fast_settings(tmp_path / "root", emulator.base_url, max_requests_per_batch=3)
        harness = Harness(settings, emulator).start()
        try:
            emulator.faults.set_error_rate(0.1, status=500, count=6)
            names = [f"noisy-{n}.jsonl" for n in range(4)]
            for n, name in enumerate(names):
                harness.drop(name, request_file(5, prefix=f"{n}-"))
            jobs = [harness.wait_job(name, timeout=30) for name in names]
            for n, name in enumerate(names):
                _assert_results(harness, name, [f"{n}-{i}" for i in range(5)])
            assert emulator.faults.fired == 6, "the errors were not all injected; the test would mean little"
            expected = {(job.id, part): 1 for job in jobs for part in ("0.0", "1.0")}
            assert _parts_with_batches(emulator) == expected  # every part has exactly one batch
        finally:
            harness.stop()


def test_download_cut_off_midway_is_fetched_again_whole(harness: Harness, emulator: EmulatorServer) -> None:
    emulator.faults.add_rule(action="drop_midway", method="GET", path_prefix="/v1/files/")
    harness.drop("cut.jsonl", request_file(40))
    job = harness.wait_job("cut.jsonl")
    _assert_results(harness, "cut.jsonl", [f"r{i}" for i in range(40)])
    cut = [c for c in emulator.calls.entries() if c.route == CONTENT_ROUTE and c.status == DROPPED]
    assert len(cut) == 1
    (batch,) = emulator.batches()
    folder = Path(job.result_dir or "")
    assert (folder / f"{batch['id']}_output.jsonl").read_bytes() == emulator.file_bytes(batch["output_file_id"])
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no partial download left behind


def test_response_slower_than_the_client_timeout(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, quick_poll_retry: None
) -> None:
    harness = harness_factory(request_timeout=0.5).start()
    emulator.faults.add_rule(action="slow", method="GET", path_prefix="/v1/batches", delay=1.5)
    with capture_logs() as captured:
        harness.drop("slow.jsonl", request_file(3))
        job = harness.wait_job("slow.jsonl")
    assert emulator.faults.fired == 1
    assert any(e["event"] == "poll_failed" and "Timeout" in e["error"] for e in captured)
    _assert_results(harness, "slow.jsonl", ["r0", "r1", "r2"])
    assert _parts_with_batches(emulator) == {(job.id, "0.0"): 1}


def test_unauthorised_for_a_while_holds_the_input_then_resumes(
    harness: Harness, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(holds, "ACCOUNT_RETRY", 0.3)
    refusals = 3
    emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=401, count=refusals)
    assert harness.store is not None
    store = harness.store
    harness.drop("held.jsonl", request_file(3))

    def blocked() -> bool:
        beat = json.loads(store.fact("heartbeat") or "{}")
        return bool(beat.get("account_blocked"))

    wait_until(blocked, 10, "the account to be reported as blocked")
    job = harness.job("held.jsonl")
    assert job is not None and job.state == JobState.ACTIVE
    assert Path(job.inflight_path).exists()
    assert not list(harness.settings.failed.iterdir())

    done = harness.wait_job("held.jsonl")
    assert emulator.faults.rules() == []  # every refusal was served
    assert emulator.calls.count("POST", "/v1/files") == refusals + 1  # one try per hold, no hammering
    assert not list(harness.settings.failed.iterdir())
    assert Path(done.final_path or "").parent == harness.settings.uploaded
    _assert_results(harness, "held.jsonl", ["r0", "r1", "r2"])
    wait_until(lambda: not blocked(), 5, "the hold to be lifted")


@pytest.fixture(name="rendered_log")
def rendered_log_fixture() -> Iterator[io.StringIO]:
    """The daemon's real log output (JSON lines, as in production), captured in memory."""
    root = logging.getLogger()
    noisy = ("openai", "httpx2", "httpx", "watchdog")
    levels = root.level, {name: logging.getLogger(name).level for name in noisy}
    out = io.StringIO()
    logs.configure(level="debug", fmt="json", stream=out)
    (ours,) = root.handlers  # configure replaces the handlers; pytest adds and removes its own per phase
    yield out
    root.removeHandler(ours)
    root.setLevel(levels[0])
    for name, level in levels[1].items():
        logging.getLogger(name).setLevel(level)


def test_api_key_is_never_written_anywhere(
    harness_factory: Callable[..., Harness],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    rendered_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    quick_poll_retry: None,
) -> None:
    monkeypatch.setattr(holds, "ACCOUNT_RETRY", 0.2)
    # A careless server that echoes the key back in its error messages, on every kind of call.
    echo = f"Incorrect API key provided: {TEST_KEY}. Header was: Bearer {TEST_KEY}"
    faults = emulator.faults
    faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=401, message=echo)
    faults.add_rule(
        action="status", method="POST", path_prefix="/v1/batches", status=500, message=echo, after_processing=True
    )
    faults.add_rule(action="status", method="GET", path_prefix="/v1/batches/", status=503, message=echo)
    faults.add_rule(action="status", method="GET", path_prefix="/v1/files/", status=502, message=echo)
    harness = harness_factory().start()
    harness.drop("good.jsonl", request_file(3))
    harness.drop("bad.jsonl", "{not json\n")
    harness.wait_job("good.jsonl")
    harness.wait_job("bad.jsonl", JobState.REJECTED)
    assert faults.rules() == []  # every echo was served

    text = rendered_log.getvalue()
    assert '"event": "account_blocked"' in text and "[redacted]" in text  # the echo reached the log, masked
    assert TEST_KEY not in text
    captured = capfd.readouterr()
    assert TEST_KEY not in captured.out + captured.err
    harness.stop()  # a running daemon may remove a temp or part file while the tree is walked
    files = [p for p in harness.settings.root.rglob("*") if p.is_file()]
    assert any(p.name.startswith("batchd.sqlite3") for p in files)
    assert any(p.name.endswith(".report.txt") for p in files)
    assert any(p.name == "results.jsonl" for p in files)
    for path in files:
        assert TEST_KEY.encode() not in path.read_bytes(), f"the API key is in {path}"


def test_one_batch_the_service_refuses_does_not_stall_the_others(tmp_path: Path) -> None:
    # Batches stay in progress for 2 s, so batch a is surely still being polled when it turns 404.
    slow = EmulatorSettings(**{**FAST, "in_progress_seconds": 2.0}, data_dir=tmp_path / "emu")  # type: ignore[arg-type]
    with EmulatorServer(slow) as emulator:
        harness = Harness(fast_settings(tmp_path / "root", emulator.base_url), emulator)
        (tmp_path / "root").mkdir()
        harness.start()
        try:
            _poll_around_a_refused_batch(harness, emulator)
        finally:
            harness.stop()


def _poll_around_a_refused_batch(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("a.jsonl", request_file(2, prefix="a"))
    job_a = wait_until(lambda: (j := harness.job("a.jsonl")) and j.state == JobState.ACTIVE and j)
    store = harness.store
    assert store is not None
    part_a = wait_until(lambda: [p for p in store.parts(job_a.id) if p.batch_id])[0]
    emulator.faults.add_rule(action="status", status=404, path_prefix=f"/v1/batches/{part_a.batch_id}", count=10_000)
    with capture_logs() as captured:
        harness.drop("b.jsonl", request_file(2, prefix="b"))
        harness.wait_job("b.jsonl")
        assert any(e["event"] == "batch_not_found" and e["batch_id"] == part_a.batch_id for e in captured)
    job = harness.job("a.jsonl")
    assert job is not None and job.state == JobState.ACTIVE, "the refused batch stays tracked, nothing is dropped"


def test_a_failing_poll_backs_off_instead_of_asking_again_at_once(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("a.jsonl", request_file(2))
    job = wait_until(lambda: (j := harness.job("a.jsonl")) and j.state == JobState.ACTIVE and j)
    store = harness.store
    assert store is not None
    wait_until(lambda: any(p.batch_id for p in store.parts(job.id)))
    emulator.faults.add_rule(action="status", status=503, method="GET", path_prefix="/v1/batches", count=10_000)
    failing_since = len(emulator.calls)
    with capture_logs() as captured:
        wait_until(lambda: sum(e["event"] == "poll_failed" for e in captured) >= 2, 10, "two failed polls")
        polls = [c for c in emulator.calls.entries()[failing_since:] if c.status == 503]
        waits = [e["retry_in"] for e in captured if e["event"] == "poll_failed"]
    assert len(polls) <= 3, f"the poller hammered a failing service: {len(polls)} calls"
    assert waits[:2] == [1.0, 2.0], "the wait doubles after each failed pass"
    emulator.faults.clear()
    harness.wait_job("a.jsonl", timeout=20)
