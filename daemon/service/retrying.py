"""Retry policy: short in-call retries with tenacity, longer ones scheduled in the state.

Transient failures are retried without limit in count, but never by blocking a worker for long:
a few quick attempts in the call (backoff with jitter, honouring Retry-After), then the step is
scheduled again through ``next_action_at`` with a capped, growing delay.
"""

from __future__ import annotations

import random
import threading

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set
from tenacity.wait import wait_base, wait_exponential_jitter

from daemon.errors import FileLimitError, TokenLimitError, TransientError

IN_CALL_ATTEMPTS = 4
IN_CALL_MAX_WAIT = 30.0  # a longer Retry-After is not waited out in a worker; it is scheduled
SCHEDULED_MAX_WAIT = 300.0


class _WaitRetryAfter(wait_base):
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self) -> None:
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=IN_CALL_MAX_WAIT, jitter=0.5)

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = exc.retry_after if isinstance(exc, TransientError) and exc.retry_after else 0.0
        return max(self._backoff(retry_state), hinted)


def _worth_waiting(exc: BaseException) -> bool:
    # A full token queue empties in minutes, not seconds: held (Holds.hold_model), not retried here;
    # nor is a full file store, which empties as batches finish (FileRoom.refused).
    if isinstance(exc, TokenLimitError | FileLimitError):
        return False
    return isinstance(exc, TransientError) and (exc.retry_after or 0.0) <= IN_CALL_MAX_WAIT


def in_call(stop: threading.Event, attempts: int = IN_CALL_ATTEMPTS) -> Retrying:
    """A tenacity policy whose waits end at once when the daemon is asked to stop."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return Retrying(
        retry=retry_if_exception(_worth_waiting),
        wait=_WaitRetryAfter(),
        stop=stop_after_attempt(attempts) | stop_when_event_set(stop),
        sleep=sleep,
        reraise=True,
    )


def scheduled_delay(tries: int, retry_after: float | None = None) -> float:
    """How long until a step that keeps failing is tried again: 2^n s, capped, with jitter."""
    base = min(SCHEDULED_MAX_WAIT, 2.0 ** min(tries, 12))
    return max(base * random.uniform(0.75, 1.0), retry_after or 0.0)
