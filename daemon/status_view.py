"""``batchd status``: one row per job, read from the state while the daemon runs."""

from __future__ import annotations

import time
from typing import Any

from daemon.states import PartState
from daemon.store import Job, Part, Store
from daemon.summary import part_batch


def job_rows(store: Store, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [_row(job, store.parts(job.id), now) for job in store.jobs()]


def _row(job: Job, parts: list[Part], now: float) -> dict[str, Any]:
    done = total = 0
    live = [p for p in parts if p.state != PartState.SUPERSEDED]
    for part in live:
        batch = part_batch(part)
        counts = batch.request_counts if batch else None
        total += part.request_count
        if counts is not None:
            done += (counts.completed or 0) + (counts.failed or 0)
    finished = sum(1 for p in parts if p.state == PartState.SUPERSEDED)
    return {
        "job_id": job.id,
        "file": job.source_name,
        "state": str(job.state),
        "batches": [{"id": p.batch_id, "status": p.batch_status} for p in parts if p.batch_id],
        "requests_done": done,
        "requests_total": job.request_count or total,
        "resubmissions": finished,
        "age_seconds": round(now - job.created_at, 1),
        "results": job.result_dir,
        "note": job.note,
    }


def render_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no jobs yet"
    header = ("FILE", "STATE", "BATCHES", "PROGRESS", "AGE")
    table = [header] + [
        (
            row["file"].replace("\n", "\\n"),
            row["state"],
            ",".join(f"{b['id']}({b['status']})" for b in row["batches"]) or "-",
            f"{row['requests_done']}/{row['requests_total'] or '?'}",
            _age(row["age_seconds"]),
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
