"""Intake of appending producers: a closed file waits ``settle_seconds`` of quiet; a rename does not;
two inputs of one name claimed close together are reported as a possible continuation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import Settings, validate
from daemon.errors import ConfigError
from daemon.intake.claim import CONTINUATION_WINDOW, Intake
from daemon.state import folders
from daemon.state.store import Store
from tests.support import FakeClock, request_line

SETTLE = 2.0
MIN_AGE = 30.0  # long: only the close (and its settling) may make these files ready


@pytest.fixture
def intake(tmp_path: Path) -> Iterator[tuple[Intake, FakeClock]]:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    clock = FakeClock()
    yield Intake(settings.pending, settings.state, store, MIN_AGE, SETTLE, clock), clock
    store.close()


def append(intake: Intake, name: str, line: str) -> None:
    """One `echo line >> name` as the watcher reports it: the file is closed after the write."""
    with open(intake.pending / name, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    intake.note(intake.pending / name, complete=True, closed=True)


def look(intake: Intake) -> list[str]:
    """One pass of the main loop with no new hints: only the files still settling are looked at."""
    return [p.name for p in intake.ready_files([])]


def test_a_closed_file_is_claimed_only_once_quiet_for_the_settle_window(intake: tuple[Intake, FakeClock]) -> None:
    taker, clock = intake
    append(taker, "append.jsonl", request_line("a"))
    assert look(taker) == []
    for n in range(5):  # a pause shorter than the window: still the same input
        clock.advance(SETTLE - 0.5)
        assert look(taker) == []
        append(taker, "append.jsonl", request_line(f"b{n}"))
    assert look(taker) == []
    clock.advance(SETTLE - 0.01)
    assert look(taker) == []
    clock.advance(0.02)
    assert look(taker) == ["append.jsonl"]  # found with no new event: settling files are looked at again
    jobs = taker.claim_all([taker.pending / "append.jsonl"])
    assert len(jobs) == 1
    assert len(Path(jobs[0].inflight_path).read_text().splitlines()) == 6


def test_a_renamed_file_is_claimed_at_once(intake: tuple[Intake, FakeClock], tmp_path: Path) -> None:
    taker, _ = intake
    staged = tmp_path / ".staged.jsonl"
    staged.write_text(request_line("a") + "\n")
    staged.rename(taker.pending / "whole.jsonl")
    taker.note(taker.pending / "whole.jsonl", complete=True)
    assert [p.name for p in taker.ready_files(["whole.jsonl"])] == ["whole.jsonl"]


def test_a_settle_window_of_zero_claims_a_closed_file_at_once(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    taker = Intake(settings.pending, settings.state, store, MIN_AGE, 0.0, FakeClock())
    append(taker, "now.jsonl", request_line("a"))
    assert [p.name for p in taker.ready_files(["now.jsonl"])] == ["now.jsonl"]
    store.close()


def test_a_second_input_of_one_name_claimed_soon_after_is_reported_as_a_continuation(
    intake: tuple[Intake, FakeClock],
) -> None:
    taker, clock = intake
    with capture_logs() as captured:
        first = claim_after_pause(taker, clock, "slow.jsonl")
        clock.advance(10.0)  # a pause longer than the window: the producer's next line is a new input
        second = claim_after_pause(taker, clock, "slow.jsonl")
        clock.advance(CONTINUATION_WINDOW + 1)
        claim_after_pause(taker, clock, "slow.jsonl")  # long after: nothing to say
        claim_after_pause(taker, clock, "other.jsonl")
    warnings = [e for e in captured if e["event"] == "input_may_be_continuation"]
    assert len(warnings) == 1
    assert warnings[0]["job_id"] == second and warnings[0]["previous_job_id"] == first
    assert warnings[0]["log_level"] == "warning"
    assert "rename" in warnings[0]["hint"] and "settle_seconds" in warnings[0]["hint"]


def claim_after_pause(taker: Intake, clock: FakeClock, name: str) -> str:
    append(taker, name, request_line("x"))
    assert look(taker) == []  # the pass the close's hint wakes
    clock.advance(SETTLE + 0.1)
    ready = taker.ready_files([])
    assert [p.name for p in ready] == [name]
    (job,) = taker.claim_all(ready)
    return job.id


def test_a_negative_settle_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settle_seconds must be 0"):
        validate(Settings(root=tmp_path, settle_seconds=-1.0))
