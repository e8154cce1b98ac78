"""Why a job waits, for ``batchd status``: a hold on the account or on the model's token queue, the
last error, and when the next try is due. Read from the state alone: status runs in another process,
so a hold is known from what the daemon records (the heartbeat, the learned limit, the model hold).
"""

from __future__ import annotations

import json
from typing import Any

from daemon.providers import DEFAULT_PROFILE
from daemon.service.holds import hold_fact, queue_full
from daemon.state.rows import Job, Part, part_model
from daemon.state.states import TERMINAL_JOB_STATES, PartState
from daemon.state.store import Store
from daemon.state.token_limits import trusted_limit

WHY_WIDTH = 60  # the table's WHY cell is cut to this; --json has the whole text
_UNSENT = frozenset({PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED, PartState.BATCH_INTENT})
_RETRIED = _UNSENT | {PartState.FINISHED}  # their next_action_at is a retry (a SUBMITTED one's is a poll)
_ENDED = frozenset({PartState.DOWNLOADED, PartState.SUPERSEDED})
NO_WAIT: dict[str, Any] = {"why": None, "hold": None, "last_error": None, "next_retry_at": None}


class WaitFacts:
    """What the daemon recorded about holds, read once per status view (per model on first use)."""

    def __init__(self, store: Store, now: float = 0.0, limit_ttl: float = 0.0) -> None:
        self._store = store
        self._now, self._limit_ttl = now, limit_ttl  # a limit older than limit_ttl holds nothing (as holds.py)
        beat = store.fact("heartbeat")
        self.account = _account_reason(beat)
        self._account_holds = _account_holds(beat)  # per profile, from a daemon that routes to several
        self._enqueued = store.enqueued_tokens_by_profile_model()
        self._limits: dict[tuple[str, str], int | None] = {}  # (profile, model): as learned on that service
        self._holds: dict[tuple[str, str], float] = {}

    def limit(self, model: str, profile: str = DEFAULT_PROFILE) -> int | None:
        if (profile, model) not in self._limits:
            limit = trusted_limit(self._store, model, profile, self._now, self._limit_ttl)
            self._limits[(profile, model)] = limit
        return self._limits[(profile, model)]

    def hold_until(self, model: str, profile: str = DEFAULT_PROFILE) -> float:
        if (profile, model) not in self._holds:
            self._holds[(profile, model)] = float(self._store.fact(hold_fact(model, profile)) or 0.0)
        return self._holds[(profile, model)]

    def account_for(self, profile: str) -> str | None:
        """The account hold on ``profile``'s service, if any."""
        if self._account_holds is None:  # a heartbeat without per-profile holds: one hold for all
            return self.account
        return self._account_holds.get(profile)

    def enqueued(self, model: str, profile: str = DEFAULT_PROFILE) -> int:
        return self._enqueued.get((profile, model), 0)


def job_wait(job: Job, parts: list[Part], facts: WaitFacts, now: float) -> dict[str, Any]:
    """The status fields saying why ``job`` waits (all None once it has ended). ``parts`` include
    those of the pack carrying it, if any: it waits on its pack."""
    if job.state in TERMINAL_JOB_STATES:
        return dict(NO_WAIT)
    open_parts = [p for p in parts if p.state not in _ENDED]
    unsent = [p for p in open_parts if p.state in _UNSENT]
    hold = _hold(job, unsent, facts, now) if unsent else None
    erred = sorted((p for p in open_parts if p.last_error), key=lambda p: p.updated_at)
    last_error = erred[-1].last_error if erred else None
    due = [p.next_action_at for p in open_parts if p.state in _RETRIED and p.next_action_at > now]
    if hold is not None and hold.get("until"):
        due.append(hold["until"])
    next_retry = min(due) if due else None
    return {
        "why": _why(hold, last_error, next_retry, now),
        "hold": hold,
        "last_error": last_error,
        "next_retry_at": next_retry,
    }


def _hold(job: Job, unsent: list[Part], facts: WaitFacts, now: float) -> dict[str, Any] | None:
    account = facts.account_for(job.profile)
    if account:
        return {"kind": "account", "reason": account}
    # Each part waits on its own model's queue (an input split by model has several): the first held names it.
    for model in dict.fromkeys(m for m in (part_model(p, job) for p in unsent) if m):
        hold = _model_hold(job, model, [p for p in unsent if part_model(p, job) == model], facts, now)
        if hold is not None:
            return hold
    return None


def _model_hold(job: Job, model: str, unsent: list[Part], facts: WaitFacts, now: float) -> dict[str, Any] | None:
    limit, until = facts.limit(model, job.profile), facts.hold_until(model, job.profile)
    if until > now:  # the service just said the queue is full
        return {"kind": "token_limit", "model": model, "limit": limit, "until": until}
    waiting = [p for p in unsent if p.state in (PartState.UPLOADED, PartState.BATCH_INTENT) and p.next_action_at > now]
    enqueued = facts.enqueued(model, job.profile)
    if any(queue_full(limit, enqueued, p.est_tokens) for p in waiting):  # as holds.model_wait
        return {"kind": "token_limit", "model": model, "limit": limit, "until": None}
    return None


def _why(hold: dict[str, Any] | None, last_error: str | None, next_retry: float | None, now: float) -> str | None:
    when = f"; next try in {_span(next_retry - now)}" if next_retry is not None else ""
    if hold is not None and hold["kind"] == "account":
        return f"account hold: {hold['reason']}"
    if hold is not None:
        limit = f"{hold['limit']:,} tokens" if hold["limit"] is not None else "unknown"
        return f"token limit of {hold['model']} full (limit {limit}){when}"
    if last_error and next_retry is not None:
        return f"retry in {_span(next_retry - now)} after: {last_error}"
    return f"last error: {last_error}" if last_error else None


def short_why(why: str | None) -> str:
    """The WHY cell: one line of printable text, cut to WHY_WIDTH."""
    if not why:
        return "-"
    text = "".join(c if c.isprintable() else "?" for c in why)
    return text if len(text) <= WHY_WIDTH else text[: WHY_WIDTH - 3] + "..."


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def _account_holds(heartbeat: str | None) -> dict[str, str] | None:
    try:
        beat = json.loads(heartbeat) if heartbeat else {}
    except ValueError:
        return None
    if not isinstance(beat, dict) or beat.get("stopped"):
        return {}
    holds = beat.get("account_holds")
    return {str(k): str(v) for k, v in holds.items()} if isinstance(holds, dict) else None


def _account_reason(heartbeat: str | None) -> str | None:
    try:
        beat = json.loads(heartbeat) if heartbeat else {}
    except ValueError:
        return None
    if not isinstance(beat, dict) or beat.get("stopped"):
        return None
    reason = beat.get("account_blocked")
    return str(reason) if reason else None
