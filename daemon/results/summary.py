"""summary.json: what happened to one input, for people and scripts."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.pricing import ModelPrice, price_for
from daemon.results.failures import results_failures
from daemon.results.usage import results_usage
from daemon.service.batch_info import part_batch
from daemon.state.rows import Job, Part


def build_summary(
    job: Job,
    parts: list[Part],
    counts: Counter[str],
    collected_at: float,
    results: Path,
    prices: Mapping[str, ModelPrice],
) -> dict[str, Any]:
    batches = [_batch_entry(p) for p in parts]
    usage = results_usage(results)
    price = price_for(job.model, prices)
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
        "usage": usage.report(),
        # Absent price (unknown model) or partial usage: None, never a guessed or short figure.
        "estimated_cost_usd": usage.cost(job.model, prices),
        "price_usd_per_1m_tokens": price._asdict() if price else None,
        "timings": {
            "claimed_at": job.created_at,
            "first_submitted_at": first_submit,
            "collected_at": collected_at,
            "seconds_total": round(collected_at - job.created_at, 3),
        },
    }


def _batch_entry(part: Part) -> dict[str, Any]:
    batch = part_batch(part)
    entry: dict[str, Any] = {
        "part": part.label,
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
