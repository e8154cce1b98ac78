"""Sort what the SDK and its transport raise into the three kinds batchd acts on.

- TransientError: try again later (network, timeouts, 408/409/429/5xx, a dropped download; an
  upload refused because the service keeps no more files: FileLimitError).
- AccountError: nothing will work until a person fixes the account (401, 403, no quota).
- PermanentError: this one input or call can never succeed as it is (other 4xx).
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections import Counter

import httpx2
import openai

from daemon.errors import (
    AccountError,
    CredentialError,
    DaemonError,
    FileLimitError,
    MalformedReplyError,
    NotFoundError,
    PermanentError,
    TokenLimitError,
    TransientError,
)
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.redaction import redact

ACCOUNT_CODES = frozenset(
    {"insufficient_quota", "invalid_api_key", "account_deactivated", "billing_hard_limit_reached"}
)

QUEUE_FULL_CODE = "token_limit_exceeded"  # the model's enqueued-token queue is full (Azure: at create)

# A refused upload because the service keeps no more input files. Azure answers 400 with code
# "quotaExceeded" and "The quota for files without expiry is reached. The maximum is 500." (as
# reported publicly in Azure/azure-sdk-for-java issue 47401); the emulator answers "quota_exceeded"
# and "The maximum number of files (N) for this resource has been reached". The code is compared
# without case or underscores and must come with a message about files (a quota code alone may
# mean tokens); a reply without that code is recognised only by wording about the number of files,
# never by a mere "maximum ... file" (a too-large file is refused for good).
_FILE_LIMIT_CODE = "quotaexceeded"
_ABOUT_FILES = re.compile(r"\bfiles?\b", re.IGNORECASE)
_FILE_COUNT = re.compile(r"number of files|quota for files|files? (count )?limit", re.IGNORECASE)

# Failed API calls by (class, provider profile) since start, for the metrics endpoint: the one count
# not in the state.
_counts: Counter[tuple[str, str]] = Counter()
_counts_lock = threading.Lock()
_KINDS = {
    TransientError: "transient",
    MalformedReplyError: "transient",
    AccountError: "account",
    PermanentError: "permanent",
    TokenLimitError: "transient",
    FileLimitError: "transient",
    NotFoundError: "permanent",
}


def error_counts() -> dict[str, int]:
    """Failed calls by class, over every profile."""
    totals: Counter[str] = Counter()
    for (kind, _), n in error_counts_by_profile().items():
        totals[kind] += n
    return dict(totals)


def error_counts_by_profile() -> dict[tuple[str, str], int]:
    """Failed calls by (class, profile)."""
    with _counts_lock:
        return dict(_counts)


def classify(exc: BaseException, profile: str = DEFAULT_PROFILE) -> DaemonError:
    """Return the batchd error for ``exc`` (its message is safe to log: secrets are masked)."""
    if isinstance(exc, DaemonError) and not isinstance(exc, CredentialError):
        return exc  # classified (and counted) already, by an inner call
    return counted(_classify_new(exc), profile)


def reported(exc: MalformedReplyError, profile: str) -> MalformedReplyError:
    """Log and count a malformed reply: callers retry (or reconcile) quietly, so this is where a
    quirky service shows in the log."""
    get_logger(__name__).warning("reply_malformed", call=exc.call, error=str(exc), profile=profile)
    counted(exc, profile)
    return exc


def profile_of(args: tuple[object, ...]) -> str:
    """The profile of the service whose method failed (``args[0]``: the service; its errors are
    counted under its profile)."""
    profile = getattr(args[0], "profile", None) if args else None
    return profile.name if isinstance(profile, Profile) else DEFAULT_PROFILE


def counted(error: DaemonError, profile: str = DEFAULT_PROFILE) -> DaemonError:
    """Count ``error`` as one failed call of ``profile``'s service (a malformed reply is raised by
    batchd, not classified)."""
    with _counts_lock:
        _counts[(_KINDS.get(type(error), "other"), profile)] += 1
    return error


def _classify_new(exc: BaseException) -> DaemonError:
    if isinstance(exc, CredentialError):
        return AccountError(str(exc))
    if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
        return TransientError(f"{type(exc).__name__}: {redact(str(exc)) or 'connection failed'}")
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    return TransientError(f"{type(exc).__name__}: {redact(str(exc))}")


def _classify_status(exc: openai.APIStatusError) -> DaemonError:
    status, code = exc.status_code, str(exc.code or "")
    message = f"HTTP {status}{f' {code}' if code else ''}: {redact(_message(exc))}"
    if status in (401, 403) or code in ACCOUNT_CODES:
        return AccountError(message)
    if file_limit_refused(status, code, _message(exc)):  # nothing was uploaded; the part waits for room
        return FileLimitError(message, retry_after=retry_after(exc.response.headers), ambiguous=False)
    if code == QUEUE_FULL_CODE:  # nothing was created; the submitter holds the model back
        return TokenLimitError(message, retry_after=retry_after(exc.response.headers), ambiguous=False)
    if status in (408, 409, 429) or status >= 500:
        # A 429 was refused before any work was done; anything else may have been carried out.
        return TransientError(message, retry_after=retry_after(exc.response.headers), ambiguous=status != 429)
    if status == 404:
        return NotFoundError(message)
    return PermanentError(message)


def file_limit_refused(status: int, code: str, message: str) -> bool:
    """Whether a reply refused an upload because the service keeps no more input files."""
    if status not in (400, 429):
        return False
    if code.replace("_", "").lower() == _FILE_LIMIT_CODE:
        return bool(_ABOUT_FILES.search(message))
    return bool(_FILE_COUNT.search(message))


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.message)


def retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date).

    Unlike the SDK, which gives up on values over 120 s, any value is honoured here.
    """
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())
