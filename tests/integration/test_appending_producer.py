"""A real producer appending line by line (`echo ... >> name.jsonl`, closing after each line)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.state.states import JobState
from tests.support import Harness, request_line, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="close events need inotify")
LINES = 6
SETTLE = 2.0


def append_line(path: Path, cid: str) -> int:
    with open(path, "a", encoding="utf-8") as fh:  # opened, written and closed: one close event
        fh.write(request_line(cid) + "\n")
    return path.stat().st_size


def wait_seen_settling(harness: Harness, name: str, size: int) -> None:
    """Until the daemon has looked at the file as it is now and decided to let it settle."""
    assert harness.engine is not None
    intake = harness.engine.intake
    wait_until(lambda: intake.settling().get(name) == size, 10.0, f"{name} seen settling at {size} bytes")


def jobs_named(harness: Harness, name: str) -> list[Any]:
    assert harness.store is not None
    return [j for j in harness.store.jobs() if j.source_name == name]


def test_lines_appended_with_pauses_within_the_window_make_one_input(harness_factory: Callable[..., Harness]) -> None:
    # A long min_file_age: only the close events (and the settling after them) can make it ready.
    harness = harness_factory(settle_seconds=SETTLE, min_file_age=60.0).start()
    path = harness.settings.pending / "append.jsonl"
    for n in range(LINES):  # each pause lasts until the daemon has seen the line: well within the window
        wait_seen_settling(harness, path.name, append_line(path, f"line-{n}"))
        assert jobs_named(harness, path.name) == []
    harness.wait_job(path.name, JobState.DONE)
    assert len(jobs_named(harness, path.name)) == 1
    assert sorted(r["custom_id"] for r in harness.results(path.name)) == [f"line-{n}" for n in range(LINES)]


def test_lines_appended_after_a_claim_make_a_second_input_with_a_warning(
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(settle_seconds=0.5, min_file_age=60.0).start()
    path = harness.settings.pending / "slow.jsonl"
    with capture_logs() as captured:
        append_line(path, "first")
        # Generous waits: on a loaded machine (CI with several tiers at once) a claim took over 10 s.
        first = wait_until(lambda: jobs_named(harness, path.name), 30.0, "the first line claimed")[0]
        append_line(path, "second")  # the producer paused longer than the window
        wait_until(lambda: len(jobs_named(harness, path.name)) == 2, 30.0, "the second line claimed")
        # The warning follows the second job's record on the engine's thread: wait for it too.
        wait_until(lambda: any(e["event"] == "input_may_be_continuation" for e in captured), 30.0, "the warning")
    second = next(j for j in jobs_named(harness, path.name) if j.id != first.id)
    warnings = [e for e in captured if e["event"] == "input_may_be_continuation"]
    assert [(w["job_id"], w["previous_job_id"]) for w in warnings] == [(second.id, first.id)]
    assert "rename" in warnings[0]["hint"]
