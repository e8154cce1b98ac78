"""What the web page shows, read from the state database (read-only) and the results folders.

The job rows are `batchd status`'s own (cli/status.py), so the page and the command agree; the page
adds the split of a running job's done requests into succeeded and failed, from its batches' counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from daemon.cli.job_progress import Split, ended_split, shared_split
from daemon.cli.status import job_rows
from daemon.cli.web_chart import Ended
from daemon.config import Settings
from daemon.intake.creation_budget import CreationBudget
from daemon.intake.reports import report_path
from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.results.usage import batches_usage
from daemon.state.rows import Job, Part
from daemon.state.states import INPUT_KIND, TERMINAL_BATCH_STATUSES, TERMINAL_JOB_STATES, JobState, PartState
from daemon.state.store import Store

MAX_ROWS = 200  # jobs listed at once, newest first: a filter or a search finds older ones
MAX_TEXT = 64 << 10  # of a report or a summary shown on the page; the file itself has the rest
MAX_FILES = 200  # files of a results folder listed
STAMPS = ("created", "in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")


@dataclass
class DaemonFacts:
    started_at: float
    heartbeat_at: float | None
    stopped: bool
    last_poll: float | None
    account_holds: dict[str, str]
    profiles: list[tuple[str, str, str]]  # name, kind, url
    jobs: dict[str, int]  # input jobs by state (as listed; the internal pack jobs are not counted)
    parts: dict[str, int]  # by state, a pack's members left out: each batch once, as the service sees them
    budget: list[tuple[str, int, int, float]]  # profile, used, allowed, window in seconds


@dataclass
class JobList:
    rows: list[dict[str, Any]]
    matched: int
    total: int


@dataclass
class JobDetail:
    job: Job
    row: dict[str, Any]
    parts: list[Part]
    summary: dict[str, Any] | None
    report: str | None
    files: list[tuple[str, int]] = field(default_factory=list)
    shared: list[Part] = field(default_factory=list)  # the parts of the pack whose batch carries this input


def daemon_facts(
    store: Store, settings: Settings, started_at: float, now: float, emulators: Mapping[str, str] | None = None
) -> DaemonFacts:
    """``emulators``: profile -> the built-in emulator it talks to (`run --emulator`), shown instead
    of its configured URL, which it does not use."""
    beat = _heartbeat(store)
    profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
    budget = CreationBudget(settings, store)
    return DaemonFacts(
        started_at=started_at,
        heartbeat_at=_number(beat.get("at")),
        stopped=bool(beat.get("stopped")),
        last_poll=_number(beat.get("last_poll")),
        account_holds=_holds(beat),
        profiles=[(name, p.kind, _url_in_use(name, p, emulators or {})) for name, p in profiles.items()],
        jobs=store.input_job_counts(),  # counted in the database: no job is loaded per refresh
        parts=store.batch_part_counts(),
        budget=[(n, budget.used(now, n), settings.creation_budget, settings.creation_window) for n in profiles],
    )


def _url_in_use(name: str, profile: Profile, emulators: Mapping[str, str]) -> str:
    """The URL the daemon sends the profile's requests to, saying so when it is a local emulator."""
    if name in emulators:
        return f"{emulators[name]}: built-in emulator, fake answers"
    return profile.base_url or "https://api.openai.com/v1"


def job_list(store: Store, settings: Settings, now: float, state: str = "", query: str = "") -> JobList:
    """Input jobs newest first, those in ``state`` (or open/ended) whose name holds ``query``."""
    parts = store.parts_by_job()  # read once: for the rows and for each shown row's split
    rows = job_rows(store, now, settings.prices, settings.token_limit_ttl, parts)
    # Read after the rows: a job claimed meanwhile is in both, one whose claim was undone in neither.
    kinds = {job.id: job.kind for job in store.jobs()}
    rows = [r for r in rows if kinds.get(r["job_id"]) == INPUT_KIND]
    rows.reverse()
    matched = [r for r in rows if _state_matches(r["state"], state) and query.casefold() in r["file"].casefold()]
    shown = matched[:MAX_ROWS]
    for row in shown:
        pack_parts = parts.get(row.get("pack") or "", [])
        row["split"] = split(row, parts.get(row["job_id"], []), pack_parts)
    return JobList(shown, len(matched), len(rows))


def _state_matches(row_state: str, wanted: str) -> bool:
    if not wanted:
        return True
    if wanted == "open":
        return row_state not in TERMINAL_JOB_STATES
    if wanted == "ended":
        return row_state in TERMINAL_JOB_STATES
    return row_state == wanted


def split(row: Mapping[str, Any], parts: list[Part], pack_parts: list[Part] | None = None) -> Split:
    """From the summary once the job ended; before, the done requests split by their batches' counts
    (for an input riding in a shared batch, its share of that batch's progress)."""
    total = int(row["requests_total"] or 0)
    outcomes = row.get("outcomes")
    if outcomes:
        return ended_split(outcomes, total)
    if pack_parts and any(p.state == PartState.PACKED for p in parts):
        return shared_split([_batch_counts(p) for p in pack_parts], total)
    failed = sum(_batch_counts(p).get("failed") or 0 for p in parts)
    done = int(row["requests_done"] or 0)
    failed = min(done, failed)
    return Split(done - failed, failed, 0, max(total, done))


def _batch_counts(part: Part) -> dict[str, Any]:
    batch = _batch(part)
    counts = batch.get("request_counts")
    return counts if isinstance(counts, dict) else {}


def _batch(part: Part) -> dict[str, Any]:
    if not part.batch_json:
        return {}
    try:
        data = orjson.loads(part.batch_json)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def job_detail(store: Store, settings: Settings, job_id: str, now: float) -> JobDetail | None:
    try:
        job = store.job(job_id)
    except KeyError:
        return None
    parts = store.parts(job.id)
    rows = job_rows(store, now, settings.prices, settings.token_limit_ttl)
    row = next((r for r in rows if r["job_id"] == job.id), {})
    pack_parts = store.parts(row["pack"]) if row.get("pack") else []
    row["split"] = split(row, parts, pack_parts)
    summary = _summary(job)
    own = {p.batch_id for p in parts}  # once the pack is unpacked, its members hold its batch as their own
    shared = [p for p in pack_parts if p.batch_id and p.batch_id not in own]
    return JobDetail(job, row, parts, summary, _report(job), _files(job), shared)


def _summary(job: Job) -> dict[str, Any] | None:
    if not job.result_dir:
        return None
    text = _read_text(Path(job.result_dir) / "summary.json")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _report(job: Job) -> str | None:
    """The report beside an input set aside in failed/."""
    if job.state not in (JobState.REJECTED, JobState.FAILED) or not job.final_path:
        return None
    return _read_text(report_path(Path(job.final_path)))


def _files(job: Job) -> list[tuple[str, int]]:
    if not job.result_dir:
        return []
    try:
        entries = sorted(Path(job.result_dir).iterdir())[:MAX_FILES]
        return [(p.name, p.stat().st_size) for p in entries if p.is_file()]
    except OSError:
        return []


def _read_text(path: Path) -> str | None:
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_TEXT + 1)
    except OSError:
        return None
    text = data[:MAX_TEXT].decode("utf-8", errors="replace")
    return text + "\n[... cut: the file has more]" if len(data) > MAX_TEXT else text


def batch_history(part: Part) -> list[tuple[str, float]]:
    """The statuses the part's batch went through, with when (from the Batch object's own times)."""
    batch = _batch(part)
    steps = [(name, batch.get(f"{name}_at")) for name in STAMPS]
    found = [(name, float(at)) for name, at in steps if isinstance(at, int | float) and not isinstance(at, bool)]
    return sorted(found, key=lambda step: step[1])


def ended_batches(store: Store, settings: Settings) -> list[Ended]:
    """Every ended batch's requests and cost, for the chart; once each, though a pack's batch is
    held by the pack and, once unpacked, by each of its members too."""
    models = {job.id: job.model for job in store.jobs()}
    points, seen = [], set()
    for job_id, parts in store.parts_by_job().items():
        for part in parts:
            batch = _batch(part)
            if batch.get("status") not in TERMINAL_BATCH_STATUSES or part.batch_id in seen:
                continue
            seen.add(part.batch_id)
            at = max((batch.get(f"{n}_at") or 0 for n in ("completed", "failed", "expired", "cancelled")), default=0)
            counts = _batch_counts(part)
            requests = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
            model = part.model or models.get(job_id) or batch.get("model")  # the part's own, if split by model
            cost = batches_usage([batch]).cost(model, settings.prices)
            points.append(Ended(float(at or part.updated_at), requests, cost))
    return points


def _heartbeat(store: Store) -> dict[str, Any]:
    try:
        beat = json.loads(store.fact("heartbeat") or "{}")
    except ValueError:
        return {}
    return beat if isinstance(beat, dict) else {}


def _holds(beat: dict[str, Any]) -> dict[str, str]:
    """Account holds by profile, as the heartbeat records them (an older one: one hold for all)."""
    if beat.get("stopped"):
        return {}
    holds = beat.get("account_holds")
    if isinstance(holds, dict):
        return {str(k): str(v) for k, v in holds.items() if v}
    blocked = beat.get("account_blocked")
    return {"every profile": str(blocked)} if blocked else {}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value else None
