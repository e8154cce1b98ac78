"""`batchd status` stays readable with many jobs: short batch ids (--wide: all), the job id, ages that
stop at the end, --active and --since, and a totals line (the same in --json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.cli.status import job_rows, render_table
from daemon.cli.status_totals import parse_duration
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store

NOW = time.time()
HOUR = 3600.0


def _job(store: Store, job_id: str, state: JobState, created: float, finished: float | None = None) -> None:
    store.add_job(Job(job_id, f"{job_id}.jsonl", "", "", JobState.CLAIMED, created, created, request_count=4))
    way = {JobState.ACTIVE: [], JobState.FAILED: [JobState.FAILED], JobState.DONE: [JobState.COLLECTING, JobState.DONE]}
    for step in [JobState.ACTIVE, *way[state]]:
        store.update_job(job_id, state=step)
    if finished is not None:
        store.update_job(job_id, finished_at=finished)


def _batch(store: Store, job_id: str, attempt: int, batch_id: str, status: str) -> None:
    part = Part(job_id, 0, attempt, "p", 1, 4, 10, 3, PartState.SUBMITTED, NOW, NOW, batch_id=batch_id)
    store.update_part(store.add_part(part).id, batch_status=status)


@pytest.fixture(name="root")
def root_fixture(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / folders.DB_NAME)
    _job(store, "old-done", JobState.DONE, NOW - 30 * HOUR, finished=NOW - 29 * HOUR)
    _job(store, "new-failed", JobState.FAILED, NOW - 2 * HOUR, finished=NOW - 0.5 * HOUR)
    _job(store, "running", JobState.ACTIVE, NOW - 3 * HOUR)
    for attempt, status in enumerate(("expired", "expired", "in_progress")):
        _batch(store, "running", attempt, f"batch_{attempt}aaaaaaaaaaaaaaaaaaaaaaaaaaaa{attempt}", status)
    store.close()
    return tmp_path


def _status(root: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    assert main(["status", "--root", str(root), *flags]) == 0
    return capsys.readouterr().out


def test_batch_ids_are_short_unless_wide_and_the_job_id_is_shown(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _status(root, capsys).splitlines()
    assert table[0].split()[-1] == "JOB"
    running = next(line for line in table if line.startswith("running.jsonl")).split()
    assert running[2] == "…aaaaaaa1(expired),…aaaaaaa2(in_progress)+1", "the newest two, cut to their ends"
    assert running[-1] == "running"
    wide = _status(root, capsys, "--wide")
    full = ",".join(f"batch_{a}{'a' * 28}{a}({s})" for a, s in enumerate(("expired", "expired", "in_progress")))
    assert full in wide


def test_ages_stop_when_a_job_ends(root: Path) -> None:
    store = Store(root / "state" / folders.DB_NAME, readonly=True)
    try:
        rows = {r["job_id"]: r for r in job_rows(store, NOW + 10 * HOUR)}
    finally:
        store.close()
    assert rows["old-done"]["age_seconds"] == pytest.approx(HOUR, abs=1), "how long it took"
    assert rows["old-done"]["ended_at"] == pytest.approx(NOW - 29 * HOUR)
    assert rows["running"]["age_seconds"] == pytest.approx(13 * HOUR, abs=1), "still running: still ageing"
    assert render_table([rows["old-done"]]).splitlines()[1].split()[7] == "60m"


def test_active_and_since_choose_the_jobs_and_the_totals_follow(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    everything = _status(root, capsys).splitlines()
    assert everything[-1].startswith("total: 3 job(s) (1 active, 1 done, 1 failed); requests")
    active = _status(root, capsys, "--active").splitlines()
    assert [line.split()[0] for line in active[1:-1]] == ["running.jsonl"]
    assert active[-1].startswith("total: 1 job(s) (1 active)")
    recent = json.loads(_status(root, capsys, "--since", "1h", "--json"))
    assert sorted(r["job_id"] for r in recent["jobs"]) == ["new-failed", "running"]
    assert recent["totals"]["jobs"] == 2 and recent["totals"]["by_state"] == {"active": 1, "failed": 1}
    assert recent["totals"]["requests_total"] == 8


def test_a_duration_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_duration("90") == 90 and parse_duration("30m") == 1800 and parse_duration("1.5d") == 129600
    with pytest.raises(SystemExit):
        main(["status", "--since", "yesterday"])
    assert "expected a duration such as 90s, 30m, 2h or 7d" in capsys.readouterr().err


def test_a_running_jobs_usage_is_in_the_words_of_summary_json(store: Store) -> None:
    """A running job's tokens come from its Batch objects; --json names them as summary.json does
    (input/output tokens), the old chat-style names kept beside them."""
    _job(store, "live", JobState.ACTIVE, NOW - HOUR)
    part = store.add_part(Part("live", 0, 0, "p", 1, 4, 10, 3, PartState.SUBMITTED, NOW, NOW, batch_id="batch_x"))
    usage = {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}
    store.update_part(part.id, batch_json=json.dumps({"id": "batch_x", "status": "in_progress", "usage": usage}))
    [row] = job_rows(store)
    assert row["usage"] == {**usage, "prompt_tokens": 30, "completion_tokens": 12}
