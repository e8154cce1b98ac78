"""Batches that stay too long in a status they should pass through (validating, finalizing,
cancelling): warned once per batch and status (``batch_stuck``); counted by the metrics endpoint.
"""

from __future__ import annotations

from daemon.config import Settings
from daemon.logs import get_logger
from daemon.service.batch_info import BatchInfo
from daemon.state.rows import Part

log = get_logger(__name__)
# Statuses a batch should pass through, each with the setting that says how long is too long.
STUCK_AFTER = {
    "validating": "stuck_validating_after",
    "finalizing": "stuck_finalizing_after",
    "cancelling": "stuck_cancelling_after",
}


def status_since(batch: BatchInfo) -> float | None:
    """When the service says ``batch`` entered its current status (validating starts at creation)."""
    stamp = batch.created_at if batch.status == "validating" else batch.stamp(batch.status)
    return None if stamp is None else float(stamp)


def stuck_limit(settings: Settings, status: str) -> float | None:
    """How long a batch may stay in ``status`` before it counts as stuck; None: no limit."""
    key = STUCK_AFTER.get(status)
    return None if key is None else float(getattr(settings, key))


class StuckWatch:
    """Warns once per batch and status (not on every poll) when a batch stays too long in a status
    it should pass through. In memory: after a restart a still-stuck batch is reported once more."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._seen: dict[str, tuple[str, float, bool]] = {}  # batch id -> (status, first seen, warned)

    def check(self, part: Part, batch: BatchInfo, now: float) -> None:
        limit = stuck_limit(self.settings, batch.status)
        if limit is None:
            self._seen.pop(batch.id, None)  # left the status: forget it, so the map stays small
            return
        status, first_seen, warned = self._seen.get(batch.id, (batch.status, now, False))
        if status != batch.status:
            first_seen, warned = now, False
        # The service's own timestamp when it has one: it survives our restarts.
        seconds = now - (status_since(batch) or first_seen)
        if seconds > limit and not warned:
            warned = True
            log.warning(
                "batch_stuck",
                job_id=part.job_id,
                part=part.label,
                batch_id=batch.id,
                status=batch.status,
                seconds=round(seconds, 1),
                limit=limit,
            )
        self._seen[batch.id] = (batch.status, first_seen, warned)
