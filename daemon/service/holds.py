"""Reasons to hold submissions back: an account problem, or a model's enqueued-token limit.

Both are per provider profile: a full queue of an Azure deployment does not hold OpenAI's model of the
same name back, nor does an account problem on one service pause another.

An account error (bad key, no quota) must not fail every file: inputs stay where they are, the
problem is reported loudly and periodically, and work resumes by itself once a call succeeds.

A learned limit is weighed against only until it is older than ``token_limit_ttl`` (the service raises
limits with the account's tier): then the model's next batch goes without it, and the service's answer
tells the limit again, if there still is one (state/token_limits.py).
"""

from __future__ import annotations

import re
import threading

from daemon.clock import WALL_CLOCK, Clock
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.state.store import Store
from daemon.state.token_limits import (
    LearnedLimit,
    learned_limit_of,
    profile_fact,
    record_limit,
    stamp_untimed_limits,
)

log = get_logger(__name__)
ACCOUNT_RETRY = 60.0  # how often a blocked account is tried again (and reported)
TOKEN_LIMIT_RETRY = 120.0  # how long a model waits after the service said its queue was full
MODEL_HOLD_FACT = "model_hold:"  # + model: until when its submissions are held (read by status)
PROFILE_HOLD_FACT = "model_hold@"  # + profile + ":" + model: the same, for a profile other than default
_LIMIT = re.compile(r"Limit:\s*([\d,]+)\s*enqueued tokens", re.IGNORECASE)


def learned_limit(message: str) -> int | None:
    """The limit from "... Limit: 90,000 enqueued tokens ..." in a token_limit_exceeded message."""
    match = _LIMIT.search(message)
    return int(match.group(1).replace(",", "")) if match else None


class Holds:
    def __init__(self, store: Store, clock: Clock = WALL_CLOCK, token_limit_ttl: float = 0.0) -> None:
        self._store = store
        self._clock = clock
        self._limit_ttl = token_limit_ttl  # seconds a learned limit is applied (0: for ever)
        self._expired_told: set[tuple[str, str, float | None]] = set()  # (profile, model, learned_at) logged
        self._lock = threading.Lock()
        # Per provider profile: an account problem on one service does not pause work on another.
        self._account: dict[str, tuple[float, str]] = {}  # profile: (until, reason)
        self._model_until: dict[tuple[str, str], float] = {}  # (profile, model): until
        self._model_turns: dict[tuple[str, str], threading.Lock] = {}

    def block_account(self, reason: str, profile: str = DEFAULT_PROFILE) -> None:
        with self._lock:
            first = profile not in self._account
            self._account[profile] = (self._clock.now() + ACCOUNT_RETRY, reason)
        log.error(
            "account_blocked",
            profile=profile,
            reason=reason,
            retry_in=ACCOUNT_RETRY,
            first=first,
            hint="inputs are kept; fix the key or the account and batchd resumes by itself",
        )

    def clear_account(self, profile: str = DEFAULT_PROFILE) -> None:
        with self._lock:
            if self._account.pop(profile, None) is None:
                return
        log.info("account_unblocked", profile=profile)

    def account_wait(self, now: float, profile: str = DEFAULT_PROFILE) -> float:
        """Seconds until the profile's account may be tried again (0: go ahead)."""
        with self._lock:
            held = self._account.get(profile)
        return max(0.0, held[0] - now) if held else 0.0

    @property
    def account_reason(self) -> str:
        """Every held profile's reason ("" when none is held); a non-default one is named."""
        with self._lock:
            held = sorted(self._account.items())
        return "; ".join(reason if name == DEFAULT_PROFILE else f"{name}: {reason}" for name, (_, reason) in held)

    def account_reasons(self) -> dict[str, str]:
        """The reason of each held profile."""
        with self._lock:
            return {name: reason for name, (_, reason) in self._account.items()}

    def note_token_limit(self, model: str, message: str, profile: str = DEFAULT_PROFILE) -> int | None:
        """Remember the limit a token_limit_exceeded message names, whether above or below the one
        learned before (the service's word is the latest); return it, or the one still trusted."""
        limit = learned_limit(message)
        if limit is None:
            return self.token_limit(model, profile)
        before = learned_limit_of(self._store, model, profile)
        record_limit(self._store, model, profile, limit, message, self._clock.now())
        previous = before.limit if before is not None else None
        if limit != previous:  # the same limit named again only renews it: the hold's warning says enough
            log.info("token_limit_learned", profile=profile, model=model, limit=limit, previous=previous)
        return limit

    def date_old_limits(self) -> None:
        """At the daemon's start: a limit learned before batchd kept the time counts as learned now."""
        for limit in stamp_untimed_limits(self._store, self._clock.now()):
            log.info("token_limit_dated", profile=limit.profile, model=limit.model, limit=limit.limit)

    def token_limit(self, model: str, profile: str = DEFAULT_PROFILE) -> int | None:
        """The limit ``model``'s batches on ``profile`` are weighed against: the learned one until it
        is older than ``token_limit_ttl`` (then None, and the next batch goes without it)."""
        learned = learned_limit_of(self._store, model, profile)
        if learned is None:
            return None
        now = self._clock.now()
        if not learned.stale(now, self._limit_ttl):
            return learned.limit
        self._tell_expired(learned, now)
        return None

    def _tell_expired(self, learned: LearnedLimit, now: float) -> None:
        """Log once per learned limit that it is no longer applied."""
        told = (learned.profile, learned.model, learned.learned_at)
        with self._lock:
            if told in self._expired_told:
                return
            self._expired_told.add(told)
        log.info(
            "token_limit_expired",
            profile=learned.profile,
            model=learned.model,
            limit=learned.limit,
            age=learned.age(now),
            hint="the next batch goes without it; a refusal names the limit again",
        )

    def hold_model(self, model: str, limit: int | None, profile: str = DEFAULT_PROFILE) -> None:
        """The model's queue was full: hold its submissions back for a while (recorded for status)."""
        until = self._clock.now() + TOKEN_LIMIT_RETRY
        with self._lock:
            self._model_until[(profile, model)] = until
        self._store.set_fact(hold_fact(model, profile), repr(until))
        log.warning("token_limit_reached", profile=profile, model=model, limit=limit, retry_in=TOKEN_LIMIT_RETRY)

    def model_turn(self, model: str, profile: str = DEFAULT_PROFILE) -> threading.Lock:
        """Held while one batch of ``model`` is weighed against the queue and created: batches
        weighed at once would each see the queue without the others and overflow it together
        (as a refitted part's new parts would)."""
        with self._lock:
            return self._model_turns.setdefault((profile, model), threading.Lock())

    def model_wait(
        self, model: str, est_tokens: int, enqueued: int, now: float, profile: str = DEFAULT_PROFILE
    ) -> float:
        """Seconds to hold a batch of ``est_tokens`` for ``model`` on ``profile`` back (0: submit now);
        ``enqueued`` counts that profile's batches only."""
        with self._lock:
            until = self._model_until.get((profile, model), 0.0)
        if until > now:
            return until - now
        limit = self.token_limit(model, profile)
        return TOKEN_LIMIT_RETRY / 4 if queue_full(limit, enqueued, est_tokens) else 0.0


def hold_fact(model: str, profile: str = DEFAULT_PROFILE) -> str:
    """The fact key recording until when ``model`` on ``profile`` is held (read by status)."""
    return profile_fact(MODEL_HOLD_FACT, PROFILE_HOLD_FACT, profile, model)


def queue_full(limit: int | None, enqueued: int, est_tokens: int) -> bool:
    """Whether a batch of ``est_tokens`` would overflow the model's queue now. With nothing
    enqueued, even an over-estimate is sent: only the service knows for sure."""
    return limit is not None and enqueued > 0 and enqueued + est_tokens > limit
