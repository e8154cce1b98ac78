"""`batchd cancel NAME`: a cancel the service refuses is reported and not recorded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from daemon.cli.main import main
from daemon.config import CANCEL_NOTE
from daemon.emulator import EmulatorServer
from daemon.state.job_endings import shown_note
from daemon.state.states import JobState
from tests.support import TEST_KEY, Harness, request_file, wait_until


@pytest.fixture(autouse=True)
def _service(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setattr("daemon.cli.main.configure", lambda *_: None)


@pytest.mark.parametrize("refusal", ["vanished", "400"])
def test_a_refused_cancel_leaves_the_job_as_it_was(
    harness_factory: Callable[..., Harness],
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    refusal: str,
) -> None:
    harness = harness_factory().start()
    emulator.mishaps.never_end_next(1)
    harness.drop("run.jsonl", request_file(2))
    wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "in_progress")
    batch_id = emulator.batches()[0]["id"]
    if refusal == "vanished":
        emulator.mishaps.vanish(batch_id)
    else:
        emulator.faults.add_rule(action="status", status=400, method="POST", path_prefix=f"/v1/batches/{batch_id}")
    assert main(["cancel", "run.jsonl", "--root", str(harness.settings.root)]) == 1
    out = capsys.readouterr().out
    assert f"the service refused to cancel batch {batch_id}" in out and "not cancelled" in out
    job = harness.job("run.jsonl")
    assert job is not None and not job.cancel_requested and job.note is None and job.state == JobState.ACTIVE


def test_an_accepted_cancel_is_recorded(harness_factory: Callable[..., Harness], emulator: EmulatorServer) -> None:
    harness = harness_factory().start()
    emulator.mishaps.never_end_next(1)
    harness.drop("run.jsonl", request_file(2))
    wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "in_progress")
    assert main(["cancel", "run.jsonl", "--root", str(harness.settings.root)]) == 0
    job = harness.wait_job("run.jsonl", JobState.DONE)
    assert job.cancel_requested and shown_note(job) == CANCEL_NOTE
    assert [b["status"] for b in emulator.batches()] == ["cancelled"]
