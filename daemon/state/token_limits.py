"""The enqueued-token limit the service reported for each model, as the state records it.

Learned from a token_limit_exceeded message (service/holds.py); read wherever a batch is weighed
against it: packing, submission and ``batchd status``.
"""

from __future__ import annotations

from daemon.state.store import Store

LIMIT_FACT = "token_limit:"  # + model: the limit the service last named for it


def known_limit(store: Store, model: str) -> int | None:
    """The enqueued-token limit the service last reported for ``model``, if any."""
    value = store.fact(f"{LIMIT_FACT}{model}")
    return int(value) if value is not None else None
