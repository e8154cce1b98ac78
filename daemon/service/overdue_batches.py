"""Batches still running past ``max_batch_age``: cancelled, then treated like an expired batch.

Some servers never expire a batch (Azure runs one until it is cancelled; llama-stack may keep a
batch in_progress for ever), which would leave a job open for ever. batchd cancels such a batch
itself and records that it did, so the collector keeps what finished and resubmits the rest per
``resubmit_unfinished`` exactly as for ``expired``, never as for a user's cancel (which resubmits
nothing). The record lives in the state, so it survives a restart between cancel and collection.

A profile that cannot cancel (``supports_cancel = false``) is not asked at every poll: the batch is
reported once (``batch_overdue_uncancellable``, recorded in the state so a restart does not repeat
it) and polled on until the service ends it, or the operator abandons the job (``batchd abandon``).
"""

from __future__ import annotations

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.state.rows import Part
from daemon.state.store import Store

log = get_logger(__name__)
_CANCELLED = "batch_overdue_cancelled:"  # facts key prefix: batchd cancelled this batch for its age
_UNCANCELLABLE = "batch_overdue_uncancellable:"  # facts key prefix: overdue on a service that cannot cancel
_RUNNING = frozenset({"validating", "in_progress", "finalizing"})


class OverdueBatches:
    def __init__(self, settings: Settings, store: Store, remote: BatchService | ProfileServices) -> None:
        self.settings = settings
        self.store = store
        self.services = profile_services(remote)
        # The shortest limit of any profile: a batch younger than that needs no look-up of its job.
        names = {DEFAULT_PROFILE, *settings.providers}
        self.shortest = min(age_limit(settings, name) for name in names)

    def enforce(self, part: Part, batch: BatchInfo, now: float) -> BatchInfo:
        """Cancel ``batch`` if it has run too long; return its freshest state."""
        started = part.submitted_at or float(batch.created_at)
        age = now - started
        if batch.status not in _RUNNING or age <= self.shortest or self.cancelled(batch.id):
            return batch
        profile = self.store.job(part.job_id).profile
        limit = age_limit(self.settings, profile)
        if age <= limit:
            return batch
        overdue = {
            "job_id": part.job_id,
            "part": part.label,
            "batch_id": batch.id,
            "status": batch.status,
            "age": round(age, 1),
            "limit": limit,
            "profile": profile,
        }
        if not self.services.of(profile).profile.supports_cancel:
            self._report_uncancellable(batch.id, now, overdue)
            return batch
        try:
            cancelled = self.services.of(profile).cancel(batch.id)
        except DaemonError as exc:  # tried again at the next poll
            log.warning("batch_overdue_cancel_failed", job_id=part.job_id, batch_id=batch.id, error=str(exc))
            return batch
        self.store.set_fact(_CANCELLED + batch.id, repr(now))
        log.warning("batch_overdue_cancelled", **overdue)
        return cancelled

    def _report_uncancellable(self, batch_id: str, now: float, overdue: dict[str, object]) -> None:
        """Once per batch: it is overdue, but its service cannot cancel it, so it is waited for."""
        if self.store.fact(_UNCANCELLABLE + batch_id) is not None:
            return
        self.store.set_fact(_UNCANCELLABLE + batch_id, repr(now))
        log.error(
            "batch_overdue_uncancellable",
            **overdue,
            hint="the profile cannot cancel (supports_cancel = false): batchd waits for the service to end the "
            "batch; cancel it in the service's console, or give the job up with batchd abandon",
        )

    def cancelled(self, batch_id: str) -> bool:
        return self.store.fact(_CANCELLED + batch_id) is not None


def age_limit(settings: Settings, profile: str) -> float:
    """Seconds a batch of ``profile`` may run: the profile's own ``max_batch_age`` (the azure kind
    has a finite one by default, as Azure never expires a job), else the top-level setting, else
    the profile's longest completion window plus 6 h."""
    chosen = settings.profile(profile)
    if chosen.max_batch_age is not None:
        return chosen.max_batch_age
    if settings.max_batch_age is not None:
        return settings.max_batch_age
    return max(settings.batch_age_limit, chosen.batch_age_limit)


def resubmission_status(store: Store, part: Part) -> str | None:
    """The status that decides whether the part's unfinished requests go again: a batch batchd
    cancelled for running too long counts as expired."""
    if part.batch_status == "cancelled" and part.batch_id and store.fact(_CANCELLED + part.batch_id) is not None:
        return "expired"
    return part.batch_status
