"""The enqueued-token limit the service reported for each model of each provider profile, as the
state records it, and how far batchd still trusts it.

Learned from a token_limit_exceeded message (service/holds.py); read wherever a batch is weighed
against it: packing, submission and ``batchd status``. A limit is the service's: an Azure deployment's
limit says nothing about OpenAI's model of the same name, so each profile learns its own.

A limit goes stale: the service raises an account's limits as its usage tier rises, and one odd
message should not cap a model for ever. So each limit records when it was learned and the message
that named it (a fact of its own, beside the limit's: an older batchd reading the state still finds
the bare number), and after ``token_limit_ttl`` seconds it is no longer applied. The next batch of
that model then goes without the cap: the service takes it (the limit is gone or higher) or refuses
it again, naming the limit afresh; a refused batch is not billed. A limit recorded before batchd kept
the time counts as learned when the daemon started (``stamp_untimed_limits``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from daemon.providers import DEFAULT_PROFILE
from daemon.redaction import redact
from daemon.state.store import Store

LIMIT_FACT = "token_limit:"  # + model: the limit the default profile's service last named for it
PROFILE_LIMIT_FACT = "token_limit@"  # + profile + ":" + model: the same, for another profile
LEARNED_FACT = "token_limit_learned:"  # + model: {"at": when, "message": what named it}, default profile
PROFILE_LEARNED_FACT = "token_limit_learned@"  # + profile + ":" + model: the same, for another profile
MESSAGE_CHARS = 500  # the service's message is kept for people to read, not whole if it is long


@dataclass(frozen=True, slots=True)
class LearnedLimit:
    """One model's learned limit on one profile, with where it came from."""

    profile: str
    model: str
    limit: int
    learned_at: float | None  # None: recorded before the time was kept, and no daemon has started since
    message: str

    def age(self, now: float) -> float | None:
        return None if self.learned_at is None else max(0.0, now - self.learned_at)

    def stale(self, now: float, ttl: float) -> bool:
        """Whether the limit is too old to apply (``ttl`` 0: it never is)."""
        age = self.age(now)
        return ttl > 0 and age is not None and age >= ttl


def profile_fact(prefix: str, profile_prefix: str, profile: str, model: str) -> str:
    """The fact key of ``model`` on ``profile``. The default profile keeps the key it had before
    profiles (what older states recorded stays its own); another profile's key starts differently
    (a profile name has no ``:`` or ``@``), so no model name of one can be read as another's."""
    return f"{prefix}{model}" if profile == DEFAULT_PROFILE else f"{profile_prefix}{profile}:{model}"


def limit_fact(model: str, profile: str = DEFAULT_PROFILE) -> str:
    """The fact key holding ``model``'s learned limit on ``profile``."""
    return profile_fact(LIMIT_FACT, PROFILE_LIMIT_FACT, profile, model)


def learned_fact(model: str, profile: str = DEFAULT_PROFILE) -> str:
    """The fact key holding when ``model``'s limit on ``profile`` was learned, and from what."""
    return profile_fact(LEARNED_FACT, PROFILE_LEARNED_FACT, profile, model)


def known_limit(store: Store, model: str, profile: str = DEFAULT_PROFILE) -> int | None:
    """The enqueued-token limit ``profile``'s service last reported for ``model``, if any, however old
    (``trusted_limit`` is the one batches are weighed against)."""
    value = store.fact(limit_fact(model, profile))
    return int(value) if value is not None else None


def learned_limit_of(store: Store, model: str, profile: str = DEFAULT_PROFILE) -> LearnedLimit | None:
    """``model``'s learned limit on ``profile`` with when and from what, if any."""
    limit = known_limit(store, model, profile)
    if limit is None:
        return None
    at, message = _provenance(store.fact(learned_fact(model, profile)))
    return LearnedLimit(profile, model, limit, at, message)


def trusted_limit(store: Store, model: str, profile: str, now: float, ttl: float) -> int | None:
    """The limit to weigh ``model``'s batches on ``profile`` against: the learned one, unless it is
    older than ``ttl`` seconds (then None, as if never learned, until the service names it again)."""
    learned = learned_limit_of(store, model, profile)
    return None if learned is None or learned.stale(now, ttl) else learned.limit


def record_limit(store: Store, model: str, profile: str, limit: int, message: str, now: float) -> None:
    """Remember ``limit`` as learned for ``model`` on ``profile`` at ``now`` from ``message``. The
    number first: it is what batches are weighed against (and all an older batchd reads)."""
    store.set_fact(limit_fact(model, profile), str(limit))
    provenance = {"at": now, "message": redact(message)[:MESSAGE_CHARS]}
    store.set_fact(learned_fact(model, profile), json.dumps(provenance))


def learned_limits(store: Store) -> list[LearnedLimit]:
    """Every learned limit of every profile, by profile then model."""
    found = [
        *(_split(key[len(LIMIT_FACT) :], default=True) for key in store.facts_starting(LIMIT_FACT)),
        *(_split(key[len(PROFILE_LIMIT_FACT) :], default=False) for key in store.facts_starting(PROFILE_LIMIT_FACT)),
    ]
    limits = (learned_limit_of(store, model, profile) for profile, model in found)
    return sorted((limit for limit in limits if limit is not None), key=lambda x: (x.profile, x.model))


def stamp_untimed_limits(store: Store, now: float) -> list[LearnedLimit]:
    """Record ``now`` (the daemon's start) as when each limit without a time was learned, so its age
    counts from there and survives restarts; return those stamped."""
    untimed = [limit for limit in learned_limits(store) if limit.learned_at is None]
    for limit in untimed:
        provenance = {"at": now, "message": limit.message}
        store.set_fact(learned_fact(limit.model, limit.profile), json.dumps(provenance))
    return untimed


def _split(rest: str, *, default: bool) -> tuple[str, str]:
    """(profile, model) of a limit fact's key without its prefix; a model name may hold ``:``."""
    if default:
        return DEFAULT_PROFILE, rest
    profile, _, model = rest.partition(":")
    return profile, model


def _provenance(value: str | None) -> tuple[float | None, str]:
    """(when, message) from a provenance fact; (None, "") when there is none or it cannot be read."""
    try:
        data = json.loads(value) if value is not None else {}
    except ValueError:
        data = {}
    at = data.get("at") if isinstance(data, dict) else None
    message = data.get("message") if isinstance(data, dict) else None
    return (float(at) if isinstance(at, int | float) else None), (message if isinstance(message, str) else "")
