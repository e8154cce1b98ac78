"""A batch still running past max_batch_age is cancelled and treated like an expired one."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.providers import DEFAULT_PROFILE, openai_default_profile
from daemon.state.states import JobState
from tests.support import Harness, request_file, wait_until


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
    first, second = emulator.batches()  # in creation order (created_at has whole seconds)
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


def test_an_overdue_batch_on_a_service_that_cannot_cancel_is_reported_once_and_waited_for(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    profile = dataclasses.replace(openai_default_profile(emulator.base_url), supports_cancel=False)
    harness = harness_factory(max_batch_age=1.0, providers={DEFAULT_PROFILE: profile}).start()
    emulator.mishaps.never_end_next(1)
    polls = "/v1/batches/{batch_id}"
    with capture_logs() as captured:
        harness.drop("endless.jsonl", request_file(4))
        job = harness.wait_job("endless.jsonl", JobState.ACTIVE)

        def reported() -> int:
            return sum(1 for e in captured if e["event"] == "batch_overdue_uncancellable")

        wait_until(reported, 20, "the overdue batch reported")
        seen = emulator.calls.count("GET", polls)
        wait_until(lambda: emulator.calls.count("GET", polls) >= seen + 5, 20, "five more polls")
        events = [e for e in captured if e["event"].startswith("batch_overdue")]
    (batch,) = emulator.batches()
    assert [e["event"] for e in events] == ["batch_overdue_uncancellable"]  # once, not at every poll
    assert events[0]["batch_id"] == batch["id"] and events[0]["job_id"] == job.id
    assert "batchd abandon" in events[0]["hint"]
    assert emulator.calls.count("POST", "/v1/batches/{batch_id}/cancel") == 0
    assert batch["status"] == "in_progress" and harness.job("endless.jsonl").state == JobState.ACTIVE  # type: ignore[union-attr]
