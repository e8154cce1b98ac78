"""`batchd status` and the web page say the same of a job's progress and tokens (cli/job_progress.py):
done is the requests that ran, the not-run ones shown apart; unknown tokens are never a 0."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.cli.job_progress import Split, requests_done, tokens_text
from daemon.cli.status import job_rows, render_table
from daemon.cli.status_totals import totals, totals_line
from daemon.cli.web_facts import job_detail, job_list
from daemon.cli.web_views import job_fragment, jobs_table
from daemon.config import Settings
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Store


def _ended(store: Store, tmp_path: Path, job_id: str, outcomes: dict[str, int], usage: dict[str, int]) -> None:
    """An ended job whose summary.json counts ``outcomes``; its batch expired after the ones that ran."""
    results = tmp_path / job_id
    results.mkdir()
    (results / "summary.json").write_text(json.dumps({"outcomes": outcomes, "usage": usage}), encoding="utf-8")
    total = sum(outcomes.values())
    job = Job(job_id, f"{job_id}.jsonl", "s", "s", JobState.DONE, 1.0, 1.0, request_count=total)
    job.result_dir, job.finished_at = str(results), 5.0
    store.add_job(job)
    ran = {"completed": outcomes["succeeded"], "failed": outcomes["failed"], "total": total}
    part = Part(job_id, 0, 0, "p", 1, total, 10, 1, PartState.DOWNLOADED, 1.0, 1.0, batch_id=f"batch_{job_id}")
    part.batch_json = json.dumps({"id": part.batch_id, "status": "expired", "request_counts": ran})
    store.add_part(part)


def _cells(table: str, name: str) -> list[str]:
    return next(line.split() for line in table.splitlines() if line.startswith(name))


def test_an_ended_job_with_unrun_requests_shows_the_same_progress_in_both(tmp_path: Path, store: Store) -> None:
    usage = {"total_tokens": 80, "lines_with_usage": 5, "lines_succeeded": 5}
    _ended(store, tmp_path, "mixed", {"succeeded": 5, "failed": 3, "not_run": 1}, usage)
    row = job_rows(store, 10.0)[0]
    assert row["requests_done"] == 8 and _cells(render_table([row]), "mixed.jsonl")[3:5] == ["8/9", "5/3/1"]
    settings = Settings(root=tmp_path)
    assert 'data-done="8" data-total="9"' in jobs_table(job_list(store, settings, 10.0), 10.0)
    assert ">8/9<" in jobs_table(job_list(store, settings, 10.0), 10.0)  # the requests cell, as status's
    detail = job_detail(store, settings, "mixed", 10.0)
    assert detail is not None
    assert "8 of 9 done (5 succeeded, 3 failed), 1 not run" in job_fragment(detail, 10.0)


def test_an_all_failed_job_shows_zero_tokens_in_both(tmp_path: Path, store: Store) -> None:
    usage = {"total_tokens": 0, "lines_with_usage": 0, "lines_succeeded": 0}
    _ended(store, tmp_path, "bad", {"succeeded": 0, "failed": 6, "not_run": 0}, usage)
    row = job_rows(store, 10.0)[0]
    assert _cells(render_table([row]), "bad.jsonl")[5] == "0"  # TOKENS: a known 0, as the page says
    detail = job_detail(store, Settings(root=tmp_path), "bad", 10.0)
    assert detail is not None and "<b>0</b>" in job_fragment(detail, 10.0)


def test_a_running_jobs_unknown_tokens_are_not_a_zero_in_the_totals(store: Store) -> None:
    store.add_job(Job("run", "run.jsonl", "s", "s", JobState.ACTIVE, 1.0, 1.0, request_count=3))
    part = Part("run", 0, 0, "p", 1, 3, 10, 1, PartState.SUBMITTED, 1.0, 1.0, batch_id="batch_run")
    part.batch_json = json.dumps({"id": "batch_run", "status": "in_progress"})  # no usage yet
    store.add_part(part)
    rows = job_rows(store, 10.0)
    assert _cells(render_table(rows), "run.jsonl")[5] == "?"
    total = totals(rows)
    assert total["total_tokens"] == 0 and total["tokens_unknown_jobs"] == 1  # --json: added beside the old field
    assert "tokens unknown" in totals_line(total) and "0 tokens" not in totals_line(total)


def test_known_and_unknown_tokens_make_a_lower_bound_total() -> None:
    known = {"usage": {"total_tokens": 1200}, "state": "done", "outcomes": None}
    unknown = {"usage": None, "state": "active", "outcomes": None}
    rows = [{**r, "requests_done": 0, "requests_total": 1, "estimated_cost_usd": None} for r in (known, unknown)]
    assert "1,200+ tokens (1 job(s) not known yet)" in totals_line(totals(rows))


def test_done_counts_the_requests_that_ran() -> None:
    assert Split(5, 3, 1, 9).done == 8
    assert requests_done({"succeeded": 5, "failed": 3, "not_run": 1}, 9) == 8
    assert requests_done(None, 4) == 4  # running: counted from its batches
    assert [tokens_text(None), tokens_text({}), tokens_text({"total_tokens": 0})] == ["?", "-", "0"]
    assert tokens_text({"total_tokens": 12_345}, short=True) == "12.3k"
    assert tokens_text({"total_tokens": 12_345}) == "12,345"


def test_an_input_riding_in_a_shared_batch_shows_the_same_progress_in_both(tmp_path: Path, store: Store) -> None:
    store.add_job(Job("in1", "small.jsonl", "s", "s", JobState.ACTIVE, 1.0, 1.0, request_count=4))
    store.add_job(Job("pack1", "pack", "p", "p", JobState.ACTIVE, 1.0, 1.0, kind=PACK_KIND, request_count=100))
    store.add_part(Part("in1", 0, 0, "p", 1, 4, 10, 1, PartState.PACKED, 1.0, 1.0, pack_id="pack1"))
    pack = Part("pack1", 0, 0, "q", 1, 100, 50, 5, PartState.SUBMITTED, 1.0, 1.0, batch_id="batch_shared")
    counts = {"completed": 50, "failed": 10, "total": 100}
    pack.batch_json = json.dumps({"id": "batch_shared", "status": "in_progress", "request_counts": counts})
    store.add_part(pack)
    row = next(r for r in job_rows(store, 10.0) if r["job_id"] == "in1")
    assert row["requests_done"] == 2 and "2/4" in _cells(render_table([row]), "small.jsonl")  # its share
    assert 'data-done="2" data-total="4"' in jobs_table(job_list(store, Settings(root=tmp_path), 10.0), 10.0)
