"""Batches the service no longer knows: after a grace their part ends, instead of being polled for ever.

A 404 on retrieve (the poller retrieves what the listing did not show) starts the clock. The first
404 is kept in the state, so a restart does not start the grace again; any later sighting of the
batch clears it. Once ``lost_batch_grace`` has passed, the part ends as downloaded with the batch
status ``lost``: what earlier attempts collected is kept, the rest is merged as ``batch_lost``
lines, and the job's input goes to failed/ with a report (see state/job_endings.py).
"""

from __future__ import annotations

import time

from daemon.config import Settings
from daemon.errors import NotFoundError
from daemon.logs import get_logger
from daemon.state.rows import Part
from daemon.state.states import PartOutcome, PartState
from daemon.state.store import Store

log = get_logger(__name__)
_SINCE = "batch_missing_since:"  # facts key prefix: when the service first answered 404


class LostBatches:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._clear: set[str] = set()  # batch ids known to have no 404 on record: no read needed

    def seen(self, batch_id: str, *, ended: bool = False) -> None:
        """The service showed the batch: forget any 404s before (and the batch itself once it ended)."""
        if batch_id not in self._clear and self.store.fact(_SINCE + batch_id) is not None:
            self.store.delete_fact(_SINCE + batch_id)
            log.info("batch_found_again", batch_id=batch_id)
        if ended:
            self._clear.discard(batch_id)  # polled no more: keeps the set as small as the running batches
        else:
            self._clear.add(batch_id)

    def missing(self, part: Part, exc: NotFoundError, now: float) -> bool:
        """The service answered 404 for the part's batch; True if that ended the part."""
        assert part.batch_id is not None
        self._clear.discard(part.batch_id)
        since = self._since(part, exc, now)
        left = self.settings.lost_batch_grace - (now - since)
        if left > 0:
            wait = min(self.settings.poll_interval, left)
            self.store.update_part(part.id, last_error=str(exc), next_action_at=now + wait)
            return False
        self._end(part, exc, now - since)
        return True

    def _since(self, part: Part, exc: NotFoundError, now: float) -> float:
        key = _SINCE + str(part.batch_id)
        recorded = self.store.fact(key)
        if recorded is not None:
            return float(recorded)
        self.store.set_fact(key, repr(now))
        log.warning(
            "batch_not_found",
            job_id=part.job_id,
            part=part.label,
            batch_id=part.batch_id,
            error=str(exc),
            grace=self.settings.lost_batch_grace,
            hint=f"polled until lost_batch_grace has passed, then the job ends with a report in failed/ (what "
            f"finished is kept); to end it now: batchd abandon {part.job_id}",
        )
        return now

    def _end(self, part: Part, exc: NotFoundError, missing_for: float) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() - missing_for))
        reason = f"the service no longer knows batch {part.batch_id} (404 since {when}: {exc})"
        with self.store.transaction():
            self.store.update_part(
                part.id, state=PartState.DOWNLOADED, outcome=PartOutcome.LOST, last_error=reason, next_action_at=0
            )
            self.store.delete_fact(_SINCE + str(part.batch_id))
        log.error(
            "batch_lost",
            job_id=part.job_id,
            part=part.label,
            batch_id=part.batch_id,
            missing_for=round(missing_for, 1),
            grace=self.settings.lost_batch_grace,
        )
