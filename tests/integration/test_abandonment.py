"""`batchd abandon NAME [--cancel]` ends a job on purpose, with a daemon running, for good."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cli.main import main
from daemon.emulator import EmulatorServer
from daemon.state.rows import ABANDON_NOTE
from daemon.state.states import JobState, PartState
from tests.support import TEST_KEY, Harness, request_file, wait_until


@pytest.fixture(autouse=True)
def _service(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    # The command configures logging for a terminal; here the daemon's log events are captured.
    monkeypatch.setattr("daemon.cli.main.configure", lambda *_: None)


def _abandon(harness: Harness, name: str, *flags: str) -> int:
    return main(["abandon", name, "--root", str(harness.settings.root), "--wait", "20", *flags])


def _codes(harness: Harness, name: str) -> Counter[str | None]:
    return Counter((r["error"] or {}).get("code") for r in harness.results(name))


def _running(harness: Harness, name: str) -> bool:
    job = harness.job(name)
    assert harness.store is not None
    parts = harness.store.parts(job.id) if job else []
    return len(parts) == 2 and {p.state for p in parts} == {PartState.DOWNLOADED, PartState.SUBMITTED}


def test_abandon_ends_the_job_at_once_and_a_restart_leaves_it_ended(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {"max_requests_per_batch": 2, "pack_inputs_up_to": 0}
    harness = harness_factory(**settings).start()
    emulator.mishaps.never_end_next(1)  # one of the two parts never ends
    harness.drop("stuck.jsonl", request_file(4))
    wait_until(lambda: _running(harness, "stuck.jsonl"), what="one part done, the other running")
    with capture_logs() as captured:
        assert _abandon(harness, "stuck.jsonl") == 0
        job = harness.wait_job("stuck.jsonl", JobState.FAILED)
    assert "ended; input in" in capsys.readouterr().out
    assert job.abandon_requested_at is not None and not job.abandon_after_cancel
    assert job.note and job.note.startswith(ABANDON_NOTE), "the ended job's note is the operator's record"
    assert _codes(harness, "stuck.jsonl") == {None: 2, "abandoned": 2}, "what finished is kept"
    report = (harness.settings.failed / "stuck.jsonl.report.txt").read_text()
    assert ABANDON_NOTE in report and "batchd retry stuck.jsonl" in report
    assert any(e["event"] == "job_abandoned" and e["job_id"] == job.id for e in captured)
    assert {b["status"] for b in emulator.batches()} == {"completed", "in_progress"}, "not cancelled"
    harness.stop()
    again = harness_factory(**settings).start()
    assert again.store is not None
    beat = again.store.fact("heartbeat")
    wait_until(lambda: again.store is not None and again.store.fact("heartbeat") != beat, what="a pass")
    ended = again.job("stuck.jsonl")
    assert ended is not None and ended.state == JobState.FAILED and ended.note == job.note
    assert len(emulator.batches()) == 2, "nothing of the abandoned job was sent again"


def test_abandon_with_cancel_collects_what_the_cancelled_batch_finished(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory().start()
    emulator.mishaps.never_end_next(1)
    harness.drop("stuck.jsonl", request_file(6))

    def half_done() -> bool:
        batches = emulator.batches()
        return bool(batches) and batches[0]["request_counts"]["completed"] == 3

    wait_until(half_done, what="the endless batch half done")
    assert _abandon(harness, "stuck.jsonl", "--cancel") == 0
    job = harness.wait_job("stuck.jsonl", JobState.FAILED)
    assert job.abandon_requested_at is not None and job.abandon_after_cancel
    assert job.note and job.note.startswith(ABANDON_NOTE) and "cancelled" in job.note
    (batch,) = emulator.batches()
    assert batch["status"] == "cancelled"
    assert _codes(harness, "stuck.jsonl") == {None: 3, "batch_cancelled": 3}
    assert "cancelled first" in (harness.settings.failed / "stuck.jsonl.report.txt").read_text()


def test_abandon_without_a_daemon_ends_the_job_itself(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    harness = harness_factory().start()
    emulator.mishaps.never_end_next(1)
    harness.drop("stuck.jsonl", request_file(2))
    wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "in_progress")
    harness.stop()
    assert _abandon(harness, "stuck.jsonl") == 0
    assert "ended; input in" in capsys.readouterr().out
    assert Path(harness.settings.failed / "stuck.jsonl").exists()
    again = harness_factory().start()
    job = again.job("stuck.jsonl")
    assert job is not None and job.state == JobState.FAILED
    assert _codes(again, "stuck.jsonl") == {"abandoned": 2}


def test_abandon_names_an_unknown_job(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert _abandon(harness, "nothing.jsonl") == 1
    assert "no open job for 'nothing.jsonl'" in capsys.readouterr().err
