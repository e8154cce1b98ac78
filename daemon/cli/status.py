"""``batchd status``: one row per job, read from the state while the daemon runs.

Progress counts, per segment of the input, the requests that ran in superseded attempts (an
expired batch whose unfinished requests went again) plus what the newest attempt's batch has
done, so a resubmitted job does not appear to go backwards.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import orjson

from daemon.cli.batch_tally import counted_batches, shared_batches
from daemon.cli.job_progress import requests_done, shared_split, tokens_text
from daemon.cli.root_guard import root_hint
from daemon.cli.status_limits import limit_rows, limits_line
from daemon.cli.status_totals import chosen, totals, totals_line
from daemon.cli.status_waits import WaitFacts, job_wait, short_why
from daemon.config import Settings
from daemon.display import printable
from daemon.errors import DaemonError
from daemon.pricing import ModelPrice
from daemon.providers import DEFAULT_PROFILE
from daemon.results.usage import TokenUsage, batches_usage
from daemon.state.folders import DB_NAME
from daemon.state.job_endings import shown_note
from daemon.state.rows import Job, Part, job_models, part_model
from daemon.state.states import PACK_KIND, TERMINAL_JOB_STATES, PartState
from daemon.state.store import Store

SUMMARY_NAME = "summary.json"
CLEAR_SCREEN = "\x1b[H\x1b[2J"
RESULTS_HEADER = "OK/FAILED/NOT-RUN"
SHOWN_BATCHES = 2  # batches named in the table's cell (the newest); --wide and --json list them all
SHORT_ID = 8  # characters kept of a batch id in the table: its end, which is what differs


def job_rows(
    store: Store,
    now: float | None = None,
    prices: Mapping[str, ModelPrice] | None = None,
    limit_ttl: float = 0.0,
    parts: Mapping[str, list[Part]] | None = None,
) -> list[dict[str, Any]]:
    """``parts``: ``store.parts_by_job()`` when the caller read it already (the web page needs it too)."""
    now = time.time() if now is None else now
    # One query, not one per job: status must stay quick at 10,000 jobs.
    parts = store.parts_by_job() if parts is None else parts
    facts = WaitFacts(store, now, limit_ttl)
    return [
        _with_shared(_row(job, parts.get(job.id, []), now, prices or {}), parts)
        | job_wait(job, _wait_parts(job, parts), facts, now)
        for job in store.jobs()
    ]


def _with_shared(row: dict[str, Any], parts: Mapping[str, list[Part]]) -> dict[str, Any]:
    """The batches of the pack that carried the input's requests, and its batches counted as the
    service sees them: a shared batch once (batch_tally.py; the web page counts with it too)."""
    pack_parts = parts.get(row["pack"] or "", [])
    row["shared_batches"] = shared_batches(pack_parts)
    row["batch_count"] = len(counted_batches(row))
    if row["outcomes"] is None and any(p.state == PartState.PACKED for p in parts.get(row["job_id"], [])):
        # Riding in the pack's batch: its share of that batch's progress, as the web page shows it.
        counts = [c if isinstance(c := _stored_batch(p).get("request_counts"), dict) else {} for p in pack_parts]
        row["requests_done"] = shared_split(counts, int(row["requests_total"] or 0)).done
    return row


def _wait_parts(job: Job, parts: Mapping[str, list[Part]]) -> list[Part]:
    """The job's parts and, while it rides in a pack, the pack's: it waits on its pack."""
    own = parts.get(job.id, [])
    packs = {p.pack_id for p in own if p.pack_id and p.state == PartState.PACKED}
    return own + [q for pack_id in sorted(packs) for q in parts.get(pack_id, [])]


def _row(job: Job, parts: list[Part], now: float, prices: Mapping[str, ModelPrice]) -> dict[str, Any]:
    done, total = progress(parts)
    summary = _finished_summary(job)
    outcomes = _outcomes(summary)
    usage, cost = _usage(job, parts, prices, summary)
    if job.kind == PACK_KIND and job.state in TERMINAL_JOB_STATES:
        usage, cost = {}, None  # handed to its members, whose own rows count it
    return {
        "job_id": job.id,
        "file": job.source_name,
        "profile": job.profile,
        "models": job_models(job, parts),  # several when its input was split by model
        "state": str(job.state),
        "batches": [{"id": p.batch_id, "status": p.shown_status} for p in parts if p.batch_id],
        "requests_done": requests_done(outcomes, done),  # those that ran: job_progress.py
        "requests_total": job.request_count or total,
        # succeeded / failed / not_run, known once the job's results are written; else None.
        "outcomes": outcomes,
        "resubmissions": sum(1 for p in parts if p.attempt > 0),
        "usage": usage,
        "estimated_cost_usd": cost,
        # A job's age stops when it ends: how long it took, not how long ago it started.
        "age_seconds": round((job.finished_at or now) - job.created_at, 1),
        "ended_at": job.finished_at,
        "results": job.result_dir,
        "note": shown_note(job),
        "pack": next((p.pack_id for p in parts if p.pack_id), None),  # the pack carrying this input, if any
        "origins": list(dict.fromkeys(str(p.origin) for p in parts)),  # where its requests are
        "cancel_requested": job.cancel_requested,
        "abandon_requested_at": job.abandon_requested_at,
    }


def progress(parts: list[Part]) -> tuple[int, int]:
    """(requests done, requests in the input) over every segment and every attempt."""
    segments: dict[int, list[Part]] = {}
    for part in sorted(parts, key=lambda p: (p.segment, p.attempt)):
        segments.setdefault(part.segment, []).append(part)
    done = total = 0
    for attempts in segments.values():
        total += attempts[0].request_count
        # The parts not superseded hold exactly the requests that did not run before: an expired
        # batch's unfinished ones, or a refitted part's cut into several (see refitter).
        left = sum(p.request_count - _batch_done(p) for p in attempts if p.state != PartState.SUPERSEDED)
        done += max(0, attempts[0].request_count - left)
    return done, total


def _batch_done(part: Part) -> int:
    counts = _stored_batch(part).get("request_counts")
    if not isinstance(counts, dict):
        return 0
    return min(part.request_count, (counts.get("completed") or 0) + (counts.get("failed") or 0))


def _stored_batch(part: Part) -> dict[str, Any]:
    """The part's last Batch object as a plain dict (see usage.batches_usage for why not pydantic)."""
    if not part.batch_json:
        return {}
    batch = orjson.loads(part.batch_json)
    return batch if isinstance(batch, dict) else {}


def _usage(
    job: Job, parts: list[Part], prices: Mapping[str, ModelPrice], summary: dict[str, Any] | None
) -> tuple[dict[str, int] | None, float | None]:
    """A finished job's figures from its summary.json; a running job's from its batches so far.
    Usage None: unknown (no line or batch carried any)."""
    if summary is not None and "usage" in summary:
        usage = summary["usage"]
        return (usage if isinstance(usage, dict) else None), summary.get("estimated_cost_usd")
    found: TokenUsage = batches_usage(_stored_batch(p) for p in parts)
    return (found.in_api_words() if found.known else None), _cost_so_far(job, parts, prices)


def _cost_so_far(job: Job, parts: list[Part], prices: Mapping[str, ModelPrice]) -> float | None:
    """Each model's batches at that model's price (an input split by model has several), summed;
    None (unknown) if any model's price or usage is."""
    by_model: dict[str | None, list[Part]] = {}
    for part in parts:
        by_model.setdefault(part_model(part, job), []).append(part)
    costs = [batches_usage(_stored_batch(p) for p in own).cost(m, prices) for m, own in by_model.items()]
    if len(costs) < 2:  # one model: its cost as it is
        return costs[0] if costs else batches_usage([]).cost(job.model, prices)
    return None if None in costs else round(sum(c for c in costs if c is not None), 9)


def _finished_summary(job: Job) -> dict[str, Any] | None:
    """The summary.json of a finished job (one small read per finished job, no schema change)."""
    if job.state not in TERMINAL_JOB_STATES or not job.result_dir:
        return None
    return _read_summary(Path(job.result_dir) / SUMMARY_NAME)


def _outcomes(summary: dict[str, Any] | None) -> dict[str, int] | None:
    found = summary.get("outcomes") if summary is not None else None
    if not isinstance(found, dict):
        return None
    counts: dict[str, int] = {}
    for name in ("succeeded", "failed", "not_run"):
        value = found.get(name)
        if type(value) is not int:
            return None
        counts[name] = value
    return counts


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def render_table(rows: list[dict[str, Any]], *, wide: bool = False) -> str:
    """One line per job; the job id last, so the columns before it keep their places. Batch ids are
    shortened to their ends, at most SHOWN_BATCHES of them, unless ``wide``."""
    if not rows:
        return "no jobs yet"
    header = ("FILE", "STATE", "BATCHES", "PROGRESS", RESULTS_HEADER, "TOKENS", "COST", "AGE", "JOB")
    table = [header] + [
        (
            printable(row["file"]),
            f"{row['state']} (in {row['pack']})" if row["pack"] and row["state"] == "active" else row["state"],
            printable(_batches(counted_batches(row), wide)) or "-",
            f"{row['requests_done']}/{row['requests_total'] or '?'}",
            _results(row["outcomes"]),
            tokens_text(row["usage"], short=True),
            _cost(row["estimated_cost_usd"]),
            _age(row["age_seconds"]),
            printable(row.get("job_id") or "-"),
        )
        for row in rows
    ]
    if any(len(row.get("models") or ()) > 1 for row in rows):  # an input split by model: name its models
        table = [(r[0], "MODELS" if n == 0 else _models(rows[n - 1]), *r[1:]) for n, r in enumerate(table)]
    if any(row.get("profile", DEFAULT_PROFILE) != DEFAULT_PROFILE for row in rows):  # routed: say where each runs
        table = [
            (r[0], "PROFILE" if n == 0 else printable(rows[n - 1]["profile"]), *r[1:]) for n, r in enumerate(table)
        ]
    if any(row.get("why") for row in rows):  # only when something waits: the usual table stays narrow
        table = [(*r, "WHY" if n == 0 else short_why(rows[n - 1].get("why"))) for n, r in enumerate(table)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table)


def _models(row: dict[str, Any]) -> str:
    """The job's models as one word (the table splits on spaces): "gpt-4o-mini+gpt-4o"."""
    return printable("+".join(row.get("models") or ())) or "-"


def _batches(batches: list[dict[str, Any]], wide: bool) -> str:
    """``id(status)`` of each batch, the ids cut to their last characters and the oldest left out
    (``+N``) unless ``wide``: one word, so the table's columns stay put. A batch shared with other
    inputs (a pack's) is marked ``shared:``."""
    if wide:
        return ",".join(f"{_shared_mark(b)}{b['id']}({b['status']})" for b in batches)
    shown = batches[-SHOWN_BATCHES:]
    cells = [f"{_shared_mark(b)}{_short(str(b['id']))}({b['status']})" for b in shown]
    more = len(batches) - len(shown)
    return ",".join(cells) + (f"+{more}" if more else "")


def _shared_mark(batch: dict[str, Any]) -> str:
    return "shared:" if batch.get("shared") else ""


def _short(batch_id: str) -> str:
    return batch_id if len(batch_id) <= SHORT_ID + 1 else "…" + batch_id[-SHORT_ID:]


def _results(outcomes: dict[str, int] | None) -> str:
    """Succeeded/failed/not-run as one word (the table splits on spaces); "-" until the job ends."""
    if outcomes is None:
        return "-"
    return f"{outcomes['succeeded']}/{outcomes['failed']}/{outcomes['not_run']}"


def _cost(cost: float | None) -> str:
    if cost is None:
        return "-"  # unknown model: usage only
    if cost < 0.01:
        return f"${cost:.6f}"
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status_text(
    settings: Settings,
    *,
    as_json: bool,
    indent: int | None = 2,
    wide: bool = False,
    active: bool = False,
    since: float | None = None,
) -> str:
    """The status view of ``settings.root``, read through a read-only connection: every job, or only
    those not ended (``active``), or also those ended in the last ``since`` seconds; a totals line."""
    db = settings.state / DB_NAME
    if not db.exists():
        raise DaemonError(
            f"no state database at {db}; has `batchd run` been started with this root? {root_hint(settings)}"
        )
    if not os.access(db, os.R_OK):
        raise DaemonError(
            f"cannot read the state database {db} (permission denied): it is the daemon's alone; run "
            "`batchd status` as the daemon's user (under systemd: sudo -u batchd)"
        )
    now = time.time()
    store = Store(db, readonly=True)
    try:
        rows = job_rows(store, now, prices=settings.prices, limit_ttl=settings.token_limit_ttl)
        limits = limit_rows(store, now, settings.token_limit_ttl)
    finally:
        store.close()
    rows = chosen(rows, active=active, since=None if since is None else now - since)
    total = totals(rows)
    if as_json:
        return json.dumps({"jobs": rows, "totals": total, "token_limits": limits}, indent=indent)
    learned = f"\n{limits_line(limits)}" if limits else ""
    return render_table(rows, wide=wide) + (f"\n{totals_line(total)}" if rows else "") + learned


def watch(
    frame: Callable[[], str], stop: threading.Event, interval: float, out: TextIO, *, clear: bool, header: bool
) -> int:
    """Show ``frame()`` every ``interval`` seconds until ``stop`` is set; return the frames shown.

    A frame that cannot be read (no database yet, a locked or damaged one) shows its error and
    the next look tries again: a watch survives a daemon restart. Without ``header`` each frame
    is written bare (one JSON document per line for scripts).
    """
    shown = 0
    while True:
        try:
            text = frame()
        except DaemonError as exc:
            text = f"batchd: {exc}" if header else json.dumps({"error": str(exc)})
        if header:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
            text = f"batchd status at {stamp} (every {interval:g}s; Ctrl-C to stop)\n{text}"
        out.write(f"{CLEAR_SCREEN if clear else ''}{text}\n")
        out.flush()
        shown += 1
        if stop.wait(interval):
            return shown
