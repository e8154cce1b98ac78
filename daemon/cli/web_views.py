"""The web page's views as HTML: the daemon, the job list, one job. Every value from the state or
from a file goes through ``esc``: file names, error messages and reports come from users and services.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.cli.batch_tally import batch_count_text, counted_batches
from daemon.cli.job_progress import Split, progress_text, tokens_text
from daemon.cli.web_chart import money
from daemon.cli.web_facts import DaemonFacts, JobDetail, JobList, batch_history
from daemon.cli.web_layout import esc, span, url_part, when
from daemon.providers import DEFAULT_PROFILE
from daemon.state.rows import Part, job_models
from daemon.state.states import JobState

BAR_WIDTH = 1000  # the progress bar's own units; it is stretched to its box
STATE_CHOICES = ("", "open", "ended", *(str(s) for s in JobState))
SHARED = "shared with other inputs: "  # marks a batch of a pack, which carried this input's requests


def progress_bar(split: Split) -> str:
    total = max(split.total, 1)
    cuts, x, rects = [("ok", split.succeeded), ("bad", split.failed), ("skip", split.not_run)], 0.0, []
    for name, count in cuts:
        width = BAR_WIDTH * count / total
        if width:
            rects.append(f'<rect class="{name}" x="{x:.1f}" width="{width:.1f}" height="12"/>')
        x += width
    label = f"requests: {progress_text(split)}"
    return (
        f'<svg class="bar" viewBox="0 0 {BAR_WIDTH} 12" preserveAspectRatio="none" role="img" '
        f'aria-label="{esc(label)}" data-done="{split.done}" data-total="{split.total}" '
        f'data-succeeded="{split.succeeded}" data-failed="{split.failed}" data-not-run="{split.not_run}">'
        f'<title>{esc(label)}</title><rect class="rest" width="{BAR_WIDTH}" height="12"/>{"".join(rects)}</svg>'
    )


def legend() -> str:
    return '<span class="legend"><i class="ok"></i>succeeded<i class="bad"></i>failed<i class="skip"></i>not run</span>'


def daemon_panel(facts: DaemonFacts, now: float) -> str:
    beat = facts.heartbeat_at
    alive = "stopped" if facts.stopped else f"{span(now - beat)} ago" if beat else "no heartbeat yet"
    holds = "".join(f"<li>{esc(name)}: {esc(reason)}</li>" for name, reason in sorted(facts.account_holds.items()))
    profiles = ", ".join(f"{esc(name)} ({esc(kind)}, {esc(url)})" for name, kind, url in facts.profiles)
    budget = "; ".join(
        f"{esc(name)}: {used:,} of {allowed:,} per {span(window)}" for name, used, allowed, window in facts.budget
    )
    items = [
        ("up since", f"{esc(when(facts.started_at))} ({span(now - facts.started_at)})"),
        ("last heartbeat", esc(alive)),
        ("last successful poll", _ago(facts.last_poll, now)),
        ("profiles", profiles),
        ("jobs", _counts(facts.jobs)),
        ("parts (one batch each)", _counts(facts.parts)),
        ("batch creations in the window", budget),
        ("account holds", f'<ul class="holds">{holds}</ul>' if holds else "none"),
    ]
    cells = "".join(
        f'<div><span class="k">{esc(name)}</span><b data-fact="{esc(name)}">{value}</b></div>' for name, value in items
    )
    return f'<section class="panel"><h2>Daemon</h2><div class="facts">{cells}</div></section>'


def _ago(stamp: float | None, now: float) -> str:
    return f"{esc(when(stamp))} ({span(now - stamp)} ago)" if stamp else "none yet"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{esc(state)} {n:,}" for state, n in sorted(counts.items())) or "none"


def filter_form(state: str, query: str) -> str:
    options = "".join(
        f'<option value="{esc(choice)}"{" selected" if choice == state else ""}>{esc(choice or "every state")}</option>'
        for choice in STATE_CHOICES
    )
    return (
        '<form class="filter" method="get" action="/"><label>state <select name="state">'
        f'{options}</select></label><label>name <input type="search" name="q" value="{esc(query)}" '
        'placeholder="part of a file name"></label><button type="submit">show</button></form>'
    )


def jobs_table(jobs: JobList, now: float) -> str:
    if not jobs.rows:
        what = "no jobs yet" if not jobs.total else "no job matches the filter"
        return f'<p class="mute" id="no-jobs">{esc(what)}</p>'
    more = jobs.matched - len(jobs.rows)
    cut = f'<p class="mute">{more:,} older jobs not shown: narrow the filter.</p>' if more > 0 else ""
    body = "".join(_job_row(row) for row in jobs.rows)
    return (
        f'<p class="mute">{jobs.matched:,} of {jobs.total:,} jobs, newest first. {legend()}</p>'
        '<table id="jobs"><thead><tr><th>file</th><th>state</th><th>progress</th><th>requests</th><th>batches</th>'
        f"<th>tokens</th><th>cost</th><th>age</th><th>why it waits</th></tr></thead><tbody>{body}</tbody></table>{cut}"
    )


def _job_row(row: dict[str, Any]) -> str:
    split: Split = row["split"]
    state = str(row["state"])
    shown_state = f"{state} (in a shared batch)" if row.get("pack") and state == "active" else state
    routed = row.get("profile", DEFAULT_PROFILE) != DEFAULT_PROFILE
    profile = f' <span class="mute">[{esc(row["profile"])}]</span>' if routed else ""
    return (
        f'<tr data-job="{esc(row["job_id"])}"><td class="name"><a href="/jobs/{url_part(row["job_id"])}">'
        f"{esc(row['file'])}</a>{profile}</td>"
        f'<td><span class="state {esc(state)}">{esc(shown_state)}</span></td><td>{progress_bar(split)}</td>'
        f'<td class="num">{_requests(split)}</td><td class="num">{_batch_count(row)}</td>'
        f'<td class="num">{esc(tokens_text(row["usage"]))}</td>'
        f'<td class="num">{esc(money(row["estimated_cost_usd"]))}</td>'
        f'<td class="num">{esc(span(row["age_seconds"]))}</td><td class="why">{esc(row.get("why") or "")}</td></tr>'
    )


def _batch_count(row: dict[str, Any]) -> str:
    """The job's batches, a shared one (its pack's, carrying other inputs too) counted and marked."""
    batches = counted_batches(row)
    shared = sorted(str(b["id"]) for b in batches if b["shared"])
    if not shared:
        return batch_count_text(batches)
    return (
        f'<span class="shared" data-shared="{len(shared)}" title="shared with other inputs: {esc(", ".join(shared))}">'
        f"{esc(batch_count_text(batches))}</span>"
    )


def _requests(split: Split) -> str:
    """Done of total; "-" before the input was read (or when it was rejected unread)."""
    return f"{split.done:,}/{split.total:,}" if split.total else "-"


def job_fragment(detail: JobDetail, now: float, commands: str = "") -> str:
    job, row = detail.job, detail.row
    split: Split = row["split"]
    facts = [
        ("state", f'<span class="state {esc(job.state)}" id="job-state">{esc(job.state)}</span>'),
        ("requests", esc(progress_text(split))),
        ("job id", esc(job.id)),
        ("profile", esc(job.profile)),
        ("model", esc(" + ".join(job_models(job, detail.parts)) or "-")),  # several if split by model
        ("endpoint", esc(job.endpoint or "-")),
        ("claimed", esc(when(job.created_at))),
        ("ended", esc(when(job.finished_at))),
        ("age", esc(span(row.get("age_seconds")))),
        ("tokens", esc(tokens_text(row.get("usage")))),
        ("estimated cost", esc(money(row.get("estimated_cost_usd")))),
        ("why it waits", esc(row.get("why") or "-")),
        ("note", esc(row.get("note") or "-")),
    ]
    cells = "".join(f'<div><span class="k">{esc(name)}</span><b>{value}</b></div>' for name, value in facts)
    return (
        f'<section class="panel"><div>{progress_bar(split)} {legend()}</div><div class="facts">{cells}</div></section>'
        f"{commands}{_batches(detail.parts, detail.shared)}{_results(detail)}{_failures(detail.summary)}"
        f"{_report(detail.report)}{_summary(detail.summary)}"
    )


def _batches(parts: list[Part], shared: list[Part]) -> str:
    if not parts and not shared:
        return '<h2>Batches</h2><p class="mute">none yet</p>'
    ordered = sorted(parts, key=lambda p: (p.segment, p.attempt))
    by_model = any(p.model for p in parts)  # an input split by model: which batch runs which model
    rows = "".join(_batch_row(p, SHARED if p.pack_id else "", by_model) for p in ordered)
    rows += "".join(_batch_row(p, SHARED, by_model) for p in shared)
    model = "<th>model</th>" if by_model else ""
    return (
        f'<h2>Batches</h2><table id="batches"><thead><tr><th>part</th>{model}<th>batch</th><th>status</th>'
        f"<th>requests</th><th>history</th><th>last error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _batch_row(part: Part, shared: str = "", by_model: bool = False) -> str:
    history = " → ".join(f"{esc(name)} {esc(when(at))}" for name, at in batch_history(part)) or "-"
    earlier = [b for b in part.old_batch_ids.split(",") if b]
    before = f'<br><span class="mute">earlier: {esc(", ".join(earlier))}</span>' if earlier else ""
    model = f"<td>{esc(part.model or '-')}</td>" if by_model else ""
    return (
        f"<tr><td>{esc(shared)}{esc(part.label)}</td>{model}<td>{esc(part.batch_id or '-')}{before}</td>"
        f'<td>{esc(part.shown_status or part.state)}</td><td class="num">{part.request_count:,}</td>'
        f'<td>{history}</td><td class="why">{esc(part.last_error or "")}</td></tr>'
    )


def _results(detail: JobDetail) -> str:
    folder = detail.job.result_dir
    if not folder:
        return ""
    files = "".join(f'<li>{esc(name)} <span class="mute">({size:,} bytes)</span></li>' for name, size in detail.files)
    return f'<h2>Results folder</h2><p><code id="results-folder">{esc(folder)}</code></p><ul>{files}</ul>'


def _failures(summary: dict[str, Any] | None) -> str:
    failures = (summary or {}).get("failures")
    if not isinstance(failures, dict) or not failures:
        return ""
    ranked = sorted(failures.items(), key=lambda kv: -int(kv[1].get("count", 0)) if isinstance(kv[1], dict) else 0)
    rows = "".join(
        f'<tr><td>{esc(code)}</td><td class="num">{int(entry.get("count", 0)):,}</td>'
        f'<td class="why">{esc(entry.get("sample", ""))}</td></tr>'
        for code, entry in ranked
        if isinstance(entry, dict)
    )
    return (
        '<h2>Failures by error code</h2><table id="failures"><thead><tr><th>code</th><th>requests</th>'
        f"<th>sample</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _report(report: str | None) -> str:
    if report is None:
        return ""
    return f'<h2>Report of the failed input</h2><pre id="report">{esc(report)}</pre>'


def _summary(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return ""
    return f'<h2>Summary</h2><pre id="summary">{esc(json.dumps(summary, indent=2, ensure_ascii=False))}</pre>'
