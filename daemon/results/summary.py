"""summary.json: what happened to one input, for people and scripts.

One token vocabulary, the Batch API's own (its Batch object's ``usage``, the Responses API):
``input_tokens``, ``output_tokens``, ``total_tokens``, in the summed ``usage`` as in each batch's.
The summed usage also keeps ``prompt_tokens`` / ``completion_tokens``, the names it had before, for
scripts that read them (deprecated). Times are epoch seconds with an ISO 8601 UTC twin (``*_iso``).

``models`` gives each model's requests, usage and cost: one entry for an input of one model; for an
input split by model (``split_by_model``) one per model, read from that model's results alone, the
top-level cost being their sum (None if any is unknown) and the top-level ``model`` None.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.pricing import ModelPrice, price_for
from daemon.results.failures import results_failures
from daemon.results.interleaver import LaneResults
from daemon.results.usage import TokenUsage, files_usage, results_usage
from daemon.service.batch_info import part_batch
from daemon.state.rows import Job, Part, part_model


def build_summary(
    job: Job,
    parts: list[Part],
    counts: Counter[str],
    collected_at: float,
    results: Path,
    prices: Mapping[str, ModelPrice],
    by_model: Mapping[str, LaneResults] | None = None,
) -> dict[str, Any]:
    """``by_model``: each model's merged results, for an input split by model (else None)."""
    batches = [_batch_entry(p, job) for p in parts]
    price = price_for(job.model, prices)
    if by_model is None:
        usage = results_usage(results)
        model = job.model or next((p.model for p in parts if p.model), None)
        models = {model: _model_entry(job.request_count, usage, model, prices)} if model else {}
        cost = usage.cost(job.model, prices)
    else:  # results.jsonl holds exactly the lanes' lines: their sum is its usage, without reading it again
        lane_usage = {m: files_usage(lane.files) for m, lane in by_model.items()}
        usage = TokenUsage()
        for found in lane_usage.values():
            usage.absorb(found)
        models = {m: _model_entry(by_model[m].requests, found, m, prices) for m, found in lane_usage.items()}
        costs = [entry["estimated_cost_usd"] for entry in models.values()]
        cost = None if None in costs else round(sum(costs), 9)
    first_submit = min((p.submitted_at for p in parts if p.submitted_at), default=None)
    return {
        "job_id": job.id,
        "input": job.source_name,
        "profile": job.profile,  # the provider profile whose service ran it (its pending_upload/ folder)
        "sha256": job.sha256,
        "endpoint": job.endpoint,
        "model": job.model,
        "requests": job.request_count,
        "outcomes": {
            "succeeded": counts["succeeded"],
            "failed": counts["failed"],
            "not_run": counts["not_run"],
        },
        # Failed and not-run requests by error code: a count and one sample message each.
        "failures": results_failures(results),
        "batches": batches,
        # None when no line's usage could be read; lines_with_usage < lines_succeeded: partial.
        "usage": usage_entry(usage.report()),
        # Absent price (unknown model) or partial usage: None, never a guessed or short figure.
        "estimated_cost_usd": cost,
        "price_usd_per_1m_tokens": price._asdict() if price else None,
        "models": models,  # each model's requests, usage and cost (several: an input split by model)
        "timings": {
            "claimed_at": job.created_at,
            "claimed_at_iso": iso_time(job.created_at),
            "first_submitted_at": first_submit,
            "first_submitted_at_iso": iso_time(first_submit),
            "collected_at": collected_at,
            "collected_at_iso": iso_time(collected_at),
            "seconds_total": round(collected_at - job.created_at, 3),
        },
    }


def _model_entry(
    requests: int | None, usage: TokenUsage, model: str, prices: Mapping[str, ModelPrice]
) -> dict[str, Any]:
    price = price_for(model, prices)
    return {
        "requests": requests,
        "usage": usage_entry(usage.report()),
        "estimated_cost_usd": usage.cost(model, prices),
        "price_usd_per_1m_tokens": price._asdict() if price else None,
    }


def usage_entry(report: dict[str, int] | None) -> dict[str, int] | None:
    """The summed usage in the API's words, with the old chat-style names kept for old readers."""
    if report is None:
        return None
    return {
        "input_tokens": report["prompt_tokens"],
        "output_tokens": report["completion_tokens"],
        "total_tokens": report["total_tokens"],
        "lines_with_usage": report["lines_with_usage"],
        "lines_succeeded": report["lines_succeeded"],
        "prompt_tokens": report["prompt_tokens"],  # deprecated: input_tokens
        "completion_tokens": report["completion_tokens"],  # deprecated: output_tokens
        # Anthropic's cache counts, already in the API's words, where the service reports them.
        **{key: value for key, value in report.items() if key.startswith("cache_")},
    }


def iso_time(moment: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC to the second (2026-12-03T00:15:46Z); None stays None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _batch_entry(part: Part, job: Job) -> dict[str, Any]:
    batch = part_batch(part)
    entry: dict[str, Any] = {
        "part": part.label,
        "model": part_model(part, job),  # its own for an input split by model: which batch ran which
        "first_line": part.first_line,
        "requests": part.request_count,
        "batch_id": part.batch_id,
        "status": part.shown_status,
        "earlier_batch_ids": [b for b in part.old_batch_ids.split(",") if b],
    }
    if part.last_error:
        entry["error"] = part.last_error
    if batch is not None:
        entry["request_counts"] = dataclasses.asdict(batch.request_counts) if batch.request_counts else None
        entry["errors"] = [dataclasses.asdict(e) for e in batch.errors]
        entry["output_file_id"] = batch.output_file_id
        entry["usage"] = batch.usage.as_dict() if batch.usage else None
        entry["error_file_id"] = batch.error_file_id
    return entry
