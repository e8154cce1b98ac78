"""What people see of an input split by model (split_by_model): `batchd status` (table and --json),
the web page's job view and the on_job_done notification name each of its models, and a running
job's cost is each model's batches at that model's price."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.status import job_rows, render_table
from daemon.cli.web_facts import ended_batches, job_detail
from daemon.cli.web_views import job_fragment
from daemon.config import Settings
from daemon.ops.job_notice import command_env, notice_for
from daemon.pricing import DEFAULT_PRICES, ModelPrice
from daemon.state.rows import Job, Part, job_models
from daemon.state.states import JobState, PartState
from daemon.state.store import Store

MINI, FULL = "gpt-4o-mini", "gpt-4o"
NOW = 1_700_000_000.0


def _batch(batch_id: str, input_tokens: int, output_tokens: int, status: str = "in_progress") -> str:
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
    counts = {"total": 1, "completed": 1, "failed": 0}
    return json.dumps({"id": batch_id, "status": status, "usage": usage, "request_counts": counts, "completed_at": 5})


def _job(store: Store, job_id: str, model: str | None, *models: str | None) -> Job:
    """A running job with a submitted part per model in ``models`` (None: the job's own model)."""
    job = Job(job_id, f"{job_id}.jsonl", "in.jsonl", "in.jsonl", JobState.ACTIVE, NOW, NOW, model=model)
    store.add_job(job)
    for n, own in enumerate(models):
        part = Part(job_id, n, 0, "p", 1, 1, 10, 10, PartState.SUBMITTED, NOW, NOW, model=own)
        part.batch_id, part.batch_json = f"batch_{job_id}_{n}", _batch(f"batch_{job_id}_{n}", 1_000_000, 100_000)
        store.add_part(part)
    return job


def test_status_names_a_mixed_jobs_models_and_prices_each_at_its_own(store: Store) -> None:
    _job(store, "mixed", None, MINI, FULL, MINI)
    _job(store, "plain", MINI, None)
    rows = {row["job_id"]: row for row in job_rows(store, NOW, prices=DEFAULT_PRICES)}
    assert rows["mixed"]["models"] == [MINI, FULL] and rows["plain"]["models"] == [MINI]
    mini, full = DEFAULT_PRICES[MINI], DEFAULT_PRICES[FULL]
    expected = 2 * (mini.input + mini.output / 10) + (full.input + full.output / 10)
    assert rows["mixed"]["estimated_cost_usd"] == pytest.approx(expected)
    assert rows["plain"]["estimated_cost_usd"] == pytest.approx(mini.input + mini.output / 10)
    header, *lines = render_table(list(rows.values())).splitlines()
    assert header.split()[:3] == ["FILE", "MODELS", "STATE"]
    assert lines[0].split()[:2] == ["mixed.jsonl", f"{MINI}+{FULL}"] and lines[1].split()[:2] == ["plain.jsonl", MINI]
    assert "MODELS" not in render_table([rows["plain"]]), "the usual table stays as it was"


def test_a_mixed_jobs_cost_is_unknown_when_one_models_price_is(store: Store) -> None:
    _job(store, "mixed", None, MINI, "my-fine-tune")
    (row,) = job_rows(store, NOW, prices={MINI: ModelPrice(1.0, 1.0)})
    assert row["estimated_cost_usd"] is None, "not the priced model's share passed off as the whole"


def test_the_web_page_and_the_notification_name_every_model(store: Store, tmp_path: Path) -> None:
    job = _job(store, "20260101T000000Z-0000beef", None, MINI, FULL)
    detail = job_detail(store, Settings(root=tmp_path), job.id, NOW)
    assert detail is not None
    assert f"<b>{MINI} + {FULL}</b>" in job_fragment(detail, NOW)
    fields = notice_for(job, job_models(job, store.parts(job.id))).fields
    assert fields["models"] == [MINI, FULL] and fields["model"] is None
    env = command_env(notice_for(job, [MINI, FULL]))
    assert (env["BATCHD_MODELS"], env["BATCHD_MODEL"]) == (f"{MINI},{FULL}", "")
    plain = _job(store, "plain", MINI, None)
    assert notice_for(plain).fields["models"] == [MINI], "one model: the job's"


def test_the_web_chart_prices_each_ended_batch_at_its_parts_model(store: Store, tmp_path: Path) -> None:
    _job(store, "mixed", None)
    for n, model in enumerate((MINI, FULL)):
        part = Part("mixed", n, 0, "p", 1, 1, 10, 10, PartState.DOWNLOADED, NOW, NOW, model=model)
        part.batch_id, part.batch_json = f"b{n}", _batch(f"b{n}", 1_000_000, 0, status="completed")
        store.add_part(part)
    costs = sorted(point.cost or 0.0 for point in ended_batches(store, Settings(root=tmp_path)))
    assert costs == pytest.approx(sorted([DEFAULT_PRICES[MINI].input, DEFAULT_PRICES[FULL].input]))


def test_the_web_pages_batches_of_a_mixed_job_name_each_batchs_model(store: Store, tmp_path: Path) -> None:
    job = _job(store, "20260101T000000Z-0000cafe", None, MINI, FULL)
    detail = job_detail(store, Settings(root=tmp_path), job.id, NOW)
    assert detail is not None
    page = job_fragment(detail, NOW)
    assert "<th>part</th><th>model</th><th>batch</th>" in page
    assert f"<td>0.0</td><td>{MINI}</td><td>batch_{job.id}_0" in page
    assert f"<td>1.0</td><td>{FULL}</td><td>batch_{job.id}_1" in page
    plain = _job(store, "20260101T000000Z-0000f00d", MINI, None)
    detail = job_detail(store, Settings(root=tmp_path), plain.id, NOW)
    assert detail is not None and "<th>model</th>" not in job_fragment(detail, NOW), "one model: as before"
