"""The poller: one thread that refreshes the status of submitted batches.

Due batches are fetched with ``batches.list`` (100 per call) when there are several, otherwise
with ``batches.retrieve``. Each batch is next checked after a wait that starts short after
submission and doubles up to ``poll_interval``. Unknown statuses are kept and polled again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from openai.types import Batch

from daemon import crashpoints
from daemon.config import Settings
from daemon.errors import AccountError, DaemonError
from daemon.holds import Holds
from daemon.logs import get_logger
from daemon.remote import Remote
from daemon.states import ACTIVE_BATCH_STATUSES, TERMINAL_BATCH_STATUSES, PartState
from daemon.store import Part, Store

log = get_logger(__name__)
LIST_WHEN_AT_LEAST = 3  # below this, one retrieve per batch is no more calls than a list page
MAX_IDLE_WAIT = 1.0  # re-check the state for new submissions at least this often
ERROR_BACKOFF = 15.0


class Poller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: Remote,
        holds: Holds,
        stop: threading.Event,
        on_finished: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.remote = remote
        self.holds = holds
        self.stop = stop
        self.on_finished = on_finished
        self.wake = threading.Event()
        self.last_success: float | None = None
        self._thread = threading.Thread(target=self._loop, name="batchd-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self.stop.is_set():
            wait = MAX_IDLE_WAIT
            try:
                self.poll_once(time.time())
            except AccountError as exc:
                self.holds.block_account(str(exc))
                wait = ERROR_BACKOFF
            except DaemonError as exc:
                log.warning("poll_failed", error=str(exc), retry_in=ERROR_BACKOFF)
                wait = ERROR_BACKOFF
            except Exception:
                log.exception("poll_crashed", retry_in=ERROR_BACKOFF)
                wait = ERROR_BACKOFF
            self.wake.wait(self._until_due(wait))
            self.wake.clear()

    def _until_due(self, cap: float) -> float:
        due = self.store.next_due(PartState.SUBMITTED)
        return cap if due is None else max(0.0, min(cap, due - time.time()))

    def poll_once(self, now: float) -> int:
        """Refresh every due batch; return how many were refreshed."""
        due = self.store.due_parts(PartState.SUBMITTED, now)
        if not due:
            return 0
        fresh = self._fetch(due)
        crashpoints.reach("polled")
        self.holds.clear_account()
        self.last_success = time.time()
        finished = sum(self._record(part, fresh[part.batch_id], now) for part in due if part.batch_id in fresh)
        if finished:
            self.on_finished()
        return len(due)

    def _fetch(self, due: list[Part]) -> dict[str, Batch]:
        wanted = {p.batch_id for p in due if p.batch_id}
        fresh: dict[str, Batch] = {}
        if len(wanted) >= LIST_WHEN_AT_LEAST:
            oldest = min(p.submitted_at or 0.0 for p in due)
            fresh = self.remote.list_batches(oldest, wanted)
        for batch_id in wanted - fresh.keys():
            fresh[batch_id] = self.remote.retrieve(batch_id)
        return fresh

    def _record(self, part: Part, batch: Batch, now: float) -> bool:
        """Store the batch's new state; True when it reached a terminal status."""
        if batch.status != part.batch_status:
            done, total = _progress(batch)
            log.info(
                "batch_status_changed",
                job_id=part.job_id,
                part=part.label,
                batch_id=batch.id,
                status=batch.status,
                previous=part.batch_status,
                done=done,
                total=total,
            )
        if batch.status not in TERMINAL_BATCH_STATUSES and batch.status not in ACTIVE_BATCH_STATUSES:
            log.warning("batch_status_unknown", batch_id=batch.id, status=batch.status)
        if batch.status in TERMINAL_BATCH_STATUSES:
            self.store.update_part(
                part.id,
                state=PartState.FINISHED,
                batch_status=batch.status,
                batch_json=batch.model_dump_json(),
                next_action_at=0,
            )
            return True
        wait = min(max(part.poll_wait, self.settings.first_poll_after) * 2, self.settings.poll_interval)
        self.store.update_part(
            part.id,
            batch_status=batch.status,
            batch_json=batch.model_dump_json(),
            poll_wait=wait,
            next_action_at=now + wait,
        )
        return False


def _progress(batch: Batch) -> tuple[int, int]:
    counts = batch.request_counts
    if counts is None:
        return 0, 0
    return (counts.completed or 0) + (counts.failed or 0), counts.total or 0
