"""The learned enqueued-token limits, for ``batchd status``: each model's limit on each profile, how
old it is, and whether it is still applied (see state/token_limits.py for when it stops being)."""

from __future__ import annotations

from typing import Any

from daemon.providers import DEFAULT_PROFILE
from daemon.state.store import Store
from daemon.state.token_limits import LearnedLimit, learned_limits


def limit_rows(store: Store, now: float, ttl: float) -> list[dict[str, Any]]:
    """One row per learned limit (``token_limits`` in ``--json``)."""
    return [_row(limit, now, ttl) for limit in learned_limits(store)]


def limits_line(rows: list[dict[str, Any]]) -> str:
    """The table's line naming each learned limit ("" when none was learned)."""
    if not rows:
        return ""
    return "learned token limits: " + "; ".join(_shown(row) for row in rows)


def _row(limit: LearnedLimit, now: float, ttl: float) -> dict[str, Any]:
    return {
        "profile": limit.profile,
        "model": limit.model,
        "limit": limit.limit,
        "learned_at": limit.learned_at,  # null: learned before batchd kept the time; dated at the daemon's start
        "age_seconds": limit.age(now),
        "expired": limit.stale(now, ttl),
        "expires_at": limit.learned_at + ttl if ttl > 0 and limit.learned_at is not None else None,
        "message": limit.message,
    }


def _shown(row: dict[str, Any]) -> str:
    name = row["model"] if row["profile"] == DEFAULT_PROFILE else f"{row['profile']}/{row['model']}"
    age = "age unknown" if row["age_seconds"] is None else f"learned {_span(row['age_seconds'])} ago"
    expired = ", expired: the next batch goes without it" if row["expired"] else ""
    return f"{name} {row['limit']:,} tokens ({age}{expired})"


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f}d"
