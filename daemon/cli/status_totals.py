"""What `batchd status` shows of all the jobs: which (``--active``, ``--since``) and their totals line."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from daemon.cli.job_progress import token_count, total_tokens_text
from daemon.state.states import TERMINAL_JOB_STATES

_ENDED = frozenset(str(s) for s in TERMINAL_JOB_STATES)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``2h``, ``1.5d``; ValueError saying how to write one."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None or float(found.group(1)) <= 0:
        raise ValueError(f"expected a duration such as 90s, 30m, 2h or 7d, got {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def chosen(rows: Iterable[dict[str, Any]], *, active: bool, since: float | None) -> list[dict[str, Any]]:
    """The rows to show: with ``active``, jobs not ended; with ``since`` (a time), jobs not ended or
    ended since then."""
    picked = []
    for row in rows:
        ended = row["state"] in _ENDED
        if active and ended:
            continue
        if since is not None and ended and (row.get("ended_at") or 0.0) < since:
            continue
        picked.append(row)
    return picked


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sums over ``rows``: jobs by state, requests done and in all, outcomes of ended jobs, tokens, cost."""
    states = Counter(row["state"] for row in rows)
    outcomes = Counter[str]()
    for row in rows:
        outcomes.update(row["outcomes"] or {})
    costs = [row["estimated_cost_usd"] for row in rows if row["estimated_cost_usd"] is not None]
    return {
        "jobs": len(rows),
        "by_state": dict(sorted(states.items())),
        "requests_done": sum(row["requests_done"] for row in rows),
        "requests_total": sum(row["requests_total"] or 0 for row in rows),
        "outcomes": {name: outcomes[name] for name in ("succeeded", "failed", "not_run")},
        "total_tokens": sum(token_count(row["usage"]) or 0 for row in rows),  # of the jobs whose tokens are known
        "tokens_unknown_jobs": sum(1 for row in rows if token_count(row["usage"]) is None),
        "estimated_cost_usd": round(sum(costs), 6) if costs else None,
    }


def totals_line(total: dict[str, Any]) -> str:
    states = ", ".join(f"{n} {state}" for state, n in total["by_state"].items())
    ended = total["outcomes"]
    cost = total["estimated_cost_usd"]
    return (
        f"total: {total['jobs']} job(s) ({states}); requests {total['requests_done']}/{total['requests_total']}; "
        f"ended jobs' results {ended['succeeded']} ok, {ended['failed']} failed, {ended['not_run']} not run; "
        f"{total_tokens_text(total['total_tokens'], total.get('tokens_unknown_jobs', 0), total['jobs'])}; "
        + ("cost unknown" if cost is None else f"estimated cost ${cost:.4f}")
    )
