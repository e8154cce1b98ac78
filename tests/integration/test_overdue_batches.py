"""A batch still running past max_batch_age is cancelled and treated like an expired one."""

from __future__ import annotations

import json
from collections.abc import Callable

from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import Harness, request_file


def _ids(emulator: EmulatorServer, file_id: str | None) -> set[str]:
    if not file_id:
        return set()
    return {json.loads(line)["custom_id"] for line in emulator.file_bytes(file_id).splitlines()}


def test_a_never_ending_batch_is_cancelled_and_its_unfinished_requests_go_again(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(max_batch_age=1.0).start()
    emulator.mishaps.never_end_next(1)  # like Azure: runs until cancelled, half its requests done
    with capture_logs() as captured:
        harness.drop("endless.jsonl", request_file(6))
        job = harness.wait_job("endless.jsonl", JobState.DONE)
    first, second = emulator.batches()  # in the order they were created (created_at has whole seconds only)
    assert first["status"] == "cancelled" and second["status"] == "completed"
    finished_first = _ids(emulator, first["output_file_id"])
    assert len(finished_first) == 3, "the cancelled batch's finished requests are kept"
    assert _ids(emulator, second["input_file_id"]) == {f"r{i}" for i in range(6)} - finished_first
    assert harness.summary("endless.jsonl")["outcomes"] == {"succeeded": 6, "failed": 0, "not_run": 0}
    assert job.note is None, "batchd's own cancel is not a user's cancel"
    events = [e for e in captured if e["event"] == "batch_overdue_cancelled"]
    assert [(e["batch_id"], e["job_id"]) for e in events] == [(first["id"], job.id)]


def test_an_overdue_cancel_resubmits_nothing_when_expired_is_not_resubmitted(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    harness = harness_factory(max_batch_age=1.0, resubmit_unfinished=frozenset()).start()
    emulator.mishaps.never_end_next(1)
    harness.drop("endless.jsonl", request_file(4))
    harness.wait_job("endless.jsonl", JobState.DONE)
    assert len(emulator.batches()) == 1
    assert harness.summary("endless.jsonl")["outcomes"] == {"succeeded": 2, "failed": 0, "not_run": 2}
