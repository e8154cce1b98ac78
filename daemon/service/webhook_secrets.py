"""Which signing secret verifies a webhook delivery: the one of the profile whose batch it names.

Each service signs its deliveries with its own secret. The batch id is read from the body before
the signature is checked, only to choose the secret: the delivery is then verified with that
secret as a whole, and nothing in it is trusted before that. A batch batchd does not know, or one
of a profile that names no secret of its own, is verified with the default secret
(OPENAI_WEBHOOK_SECRET and its kin). That one is needed only while some profile relies on it: when
every profile whose service sends webhooks names its own, it may be left unset, and a delivery about
no batch of theirs is then checked against each profile's own secret (it may be about a batch whose
create reply was lost; it is answered, not refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.service.credentials import KeySource
from daemon.state.store import Store


@dataclass(frozen=True, slots=True)
class ProfileSecrets:
    by_profile: Mapping[str, KeySource]  # only the profiles that name a secret of their own
    profile_of: Callable[[str], str | None]  # batch id -> the profile of its job, from the state

    def choose(self, body: bytes, default: KeySource | None) -> tuple[str, tuple[KeySource, ...]]:
        """(profile, the secrets that may verify it) for a delivery's body: its batch's profile's own,
        else the default one, else (none set) every profile's own."""
        batch_id = named_batch(body)
        profile = (self.profile_of(batch_id) if batch_id else None) or DEFAULT_PROFILE
        own = self.by_profile.get(profile)
        if own is not None:
            return profile, (own,)
        return profile, (default,) if default is not None else tuple(self.by_profile.values())


def relying_on_default(profiles: Mapping[str, Profile]) -> list[str]:
    """The profiles whose deliveries only the default secret can verify: those naming no secret of
    their own, of a kind whose service sends webhooks (Anthropic's Message Batches send none)."""
    return sorted(name for name, p in profiles.items() if p.webhook_keys is None and p.kind != "anthropic")


def named_batch(body: bytes) -> str | None:
    """The ``data.id`` of an event body, unverified; None if it has none."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    batch_id = data.get("id") if isinstance(data, dict) else None
    return batch_id if isinstance(batch_id, str) and batch_id else None


def batch_profiles(store: Store | None) -> Callable[[str], str | None]:
    """Batch id -> the profile of the job it belongs to, read from the state (None without one)."""

    def profile_of(batch_id: str) -> str | None:
        if store is None:
            return None
        part = store.part_by_batch(batch_id)
        return None if part is None else store.job(part.job_id).profile

    return profile_of
