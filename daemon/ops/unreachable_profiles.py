"""Why `batchd recover` could not search a provider profile's service, and what to change.

A profile whose key is missing, whose key the service refuses, or whose service cannot be reached
or listed at its base URL is reported with the cause and the fix; recover goes on with the other
profiles and leaves this one's inputs where they are (their batches could not be looked for, so
giving them back could run them twice). Running recover again once the profile works rebuilds them.
"""

from __future__ import annotations

from daemon.errors import AccountError, CredentialError, NotFoundError, PermanentError, TransientError
from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.redaction import redact

RERUN = "then run `batchd recover` again: its inputs are left in state/inflight/ until then"


def failure_reason(profile: Profile, exc: Exception) -> str:
    """What failed for ``profile`` and what to change, without any secret."""
    cause = redact(str(exc)) or type(exc).__name__
    if isinstance(exc, CredentialError):
        return f"{cause}; {RERUN}"
    if isinstance(exc, AccountError):
        return f"its service refused the key ({cause}): check the key ({key_places(profile)}); {RERUN}"
    url = profile.base_url or "the default URL (or $OPENAI_BASE_URL)"
    if isinstance(exc, NotFoundError | PermanentError):
        return f"its service at {url} did not list batches ({cause}): check {setting(profile)} base_url; {RERUN}"
    if isinstance(exc, TransientError | OSError):
        return (
            f"its service at {url} could not be reached or failed ({cause}): check {setting(profile)} base_url "
            f"and the network; {RERUN}"
        )
    return f"its service at {url} could not be listed ({cause}); {RERUN}"


def key_places(profile: Profile) -> str:
    if profile.auth == "entra":
        return "the Microsoft Entra ID sign-in of this machine"
    return f"{profile.keys.described()}, as {setting(profile)} names it"


def setting(profile: Profile) -> str:
    """Where the profile is configured."""
    return f"[providers.{profile.name or DEFAULT_PROFILE}]"
