"""The enqueued-token limit the service reported for each model of each provider profile, as the
state records it.

Learned from a token_limit_exceeded message (service/holds.py); read wherever a batch is weighed
against it: packing, submission and ``batchd status``. A limit is the service's: an Azure deployment's
limit says nothing about OpenAI's model of the same name, so each profile learns its own.
"""

from __future__ import annotations

from daemon.providers import DEFAULT_PROFILE
from daemon.state.store import Store

LIMIT_FACT = "token_limit:"  # + model: the limit the default profile's service last named for it
PROFILE_LIMIT_FACT = "token_limit@"  # + profile + ":" + model: the same, for another profile


def profile_fact(prefix: str, profile_prefix: str, profile: str, model: str) -> str:
    """The fact key of ``model`` on ``profile``. The default profile keeps the key it had before
    profiles (what older states recorded stays its own); another profile's key starts differently
    (a profile name has no ``:`` or ``@``), so no model name of one can be read as another's."""
    return f"{prefix}{model}" if profile == DEFAULT_PROFILE else f"{profile_prefix}{profile}:{model}"


def limit_fact(model: str, profile: str = DEFAULT_PROFILE) -> str:
    """The fact key holding ``model``'s learned limit on ``profile``."""
    return profile_fact(LIMIT_FACT, PROFILE_LIMIT_FACT, profile, model)


def known_limit(store: Store, model: str, profile: str = DEFAULT_PROFILE) -> int | None:
    """The enqueued-token limit ``profile``'s service last reported for ``model``, if any."""
    value = store.fact(limit_fact(model, profile))
    return int(value) if value is not None else None
