"""The poller: one thread that refreshes the status of submitted batches.

Due batches are fetched with ``batches.list`` (100 per call) when there are several, otherwise
with ``batches.retrieve`` (``BatchService.list_batches`` also copes with an account another client fills
faster). Each batch is next checked after a wait that starts short after submission and doubles
up to ``poll_interval``. Unknown statuses are kept and polled again.
A webhook can ask for one batch to be checked at once (``refresh_now``); polling stays the
fallback. A batch that stays too long in validating, finalizing or cancelling is reported once
per status (``batch_stuck``, see stuck_watch.py). A batch the service no longer knows ends its part after a grace
(lost_batches.py); one still running past ``max_batch_age`` is cancelled (overdue_batches.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from daemon import crashpoints
from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.errors import AccountError, DaemonError, MalformedReplyError, NotFoundError, PermanentError
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_service import BatchService
from daemon.service.holds import Holds
from daemon.service.lost_batches import LostBatches
from daemon.service.overdue_batches import OverdueBatches
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.service.stuck_watch import StuckWatch
from daemon.state.rows import Part
from daemon.state.states import ACTIVE_BATCH_STATUSES, TERMINAL_BATCH_STATUSES, PartState
from daemon.state.store import Store

log = get_logger(__name__)
# All due batches in one pass: list pages come newest first, so splitting a pass into slices of
# the oldest would page through the newest batches again for every slice.
MAX_PER_PASS = 100_000
LIST_WHEN_AT_LEAST = 3  # below this, one retrieve per batch is no more calls than a list page
# Between due batches the poller sleeps: the engine wakes it after every pass that may have changed the
# state (a submission among them), and so do a webhook and the stop. This only bounds the sleep.
MAX_IDLE_WAIT = 60.0
# After a failed pass: 1 s, doubling, at most a minute (capped backoff, never a give-up).
FIRST_ERROR_BACKOFF = 1.0
ERROR_BACKOFF = 60.0
RefreshOutcome = Literal["queued", "unknown", "finished"]


class Poller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: BatchService | ProfileServices,
        holds: Holds,
        stop: threading.Event,
        on_finished: Callable[[], None],
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.services = profile_services(remote)
        self.remote = self.services.default
        self.holds = holds
        self.stop = stop
        self.on_finished = on_finished
        self.wake = threading.Event()
        self.last_success: float | None = None
        self._lock = threading.Lock()
        self._urgent: set[str] = set()  # batch ids a webhook asked to check now
        self.stuck = StuckWatch(settings)
        self.lost = LostBatches(settings, store)
        self.overdue = OverdueBatches(settings, store, self.services)
        self._ended = 0  # parts the last fetch ended (their batch was lost)
        self._profile_failures: dict[str, int] = {}  # failed polls in a row, by profile (several profiles only)
        self._thread = threading.Thread(target=self._loop, name="batchd-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            self.wake.clear()  # before polling, so a wake-up that arrives during the poll is kept
            try:
                self.poll_once(self.clock.now())
            except Exception as exc:  # noqa: BLE001 - every failure is reported and waited out
                failures += 1
                wait = self._after_failure(exc, failures)
            else:
                failures = 0
                wait = self._until_due(MAX_IDLE_WAIT)
            self.wake.wait(wait)

    def _after_failure(self, exc: Exception, failures: int) -> float:
        """Report a failed pass; return how long to wait. The failed batches are still due, so
        without this wait the poller would ask again at once, all through an outage."""
        wait = backoff_after(failures)
        if isinstance(exc, AccountError):
            self.holds.block_account(str(exc))
        elif isinstance(exc, DaemonError):
            log.warning("poll_failed", error=str(exc), retry_in=wait, failures=failures)
        else:
            log.error("poll_crashed", exc_info=exc, retry_in=wait, failures=failures)
        return wait

    def refresh_now(self, batch_id: str) -> RefreshOutcome:
        """Check ``batch_id`` at the next pass instead of when due (a webhook said it ended)."""
        part = self.store.part_by_batch(batch_id)
        if part is None:
            return "unknown"
        if part.state != PartState.SUBMITTED:
            return "finished"  # already seen ending: nothing left to refresh
        if self._held_to_min_poll(part):
            return "queued"
        with self._lock:
            self._urgent.add(batch_id)
        self.wake.set()
        return "queued"

    def _held_to_min_poll(self, part: Part) -> bool:
        """A check the profile's ``min_poll_interval`` does not allow yet (Azure: a minute since the
        last one) is brought forward to the earliest moment it allows, not made at once."""
        name = self.store.job(part.job_id).profile
        floor = self.services.of(name).profile.min_poll_interval if name in self.services.names() else 0.0
        earliest = part.next_action_at - part.poll_wait + floor  # the last check, plus the floor
        now = self.clock.now()
        if floor <= 0 or earliest <= now:
            return False
        if earliest < part.next_action_at:
            self.store.update_part(part.id, next_action_at=earliest)
            self.wake.set()
        log.info(
            "batch_refresh_deferred", job_id=part.job_id, part=part.label, batch_id=part.batch_id, at=round(earliest, 1)
        )
        return True

    def _until_due(self, cap: float) -> float:
        due = self.store.next_due(PartState.SUBMITTED)
        return cap if due is None else max(0.0, min(cap, due - self.clock.now()))

    def poll_once(self, now: float) -> int:
        """Refresh every due batch; return how many were refreshed."""
        with self._lock:
            urgent, self._urgent = self._urgent, set()
        due = self._due(now, urgent)
        if not due:
            return 0
        self._ended = 0
        try:
            fresh = self._fetch(due, now)
        except Exception:
            with self._lock:
                self._urgent |= urgent  # still wanted: try them again with the next pass
            raise
        crashpoints.reach("polled")
        self.last_success = self.clock.now()
        self.store.set_fact("last_poll", repr(self.last_success))  # read by the metrics endpoint
        for part in due:
            if part.batch_id in fresh:
                fresh[part.batch_id] = self.overdue.enforce(part, fresh[part.batch_id], now)
        floor = self._poll_floor()
        with self.store.transaction():  # one commit per pass, not one per batch
            finished = sum(
                self._record(part, fresh[part.batch_id], now, floor(part)) for part in due if part.batch_id in fresh
            )
        if finished or self._ended:
            self.on_finished()
        return len(due)

    def _poll_floor(self) -> Callable[[Part], float]:
        """Each part's shortest wait between polls: its profile's ``min_poll_interval`` (Azure asks
        for a minute); the jobs are looked up only when some profile has one."""
        floors = {name: self.services.of(name).profile.min_poll_interval for name in self.services.names()}
        if not any(floors.values()):
            return lambda part: 0.0
        routed = self.store.routed_jobs()
        return lambda part: floors.get(routed.get(part.job_id, DEFAULT_PROFILE), 0.0)

    def _due(self, now: float, urgent: set[str]) -> list[Part]:
        due = self.store.due_parts(PartState.SUBMITTED, now, limit=MAX_PER_PASS)
        for batch_id in urgent - {p.batch_id for p in due}:
            part = self.store.part_by_batch(batch_id)
            if part is not None and part.state == PartState.SUBMITTED:
                log.info("batch_refresh_requested", job_id=part.job_id, part=part.label, batch_id=batch_id)
                due.append(part)
        return due

    def _fetch(self, due: list[Part], now: float) -> dict[str, BatchInfo]:
        """Each profile's batches from its own service. An account problem holds that profile's
        batches back (asked again after the hold); the other profiles' are polled as usual."""
        if len(self.services.names()) == 1:  # one profile: its failure fails the pass, as it always did
            return self._fetch_profile(DEFAULT_PROFILE, due, now)
        routed = self.store.routed_jobs()
        groups: dict[str, list[Part]] = {}
        for part in due:
            groups.setdefault(routed.get(part.job_id, DEFAULT_PROFILE), []).append(part)
        fresh: dict[str, BatchInfo] = {}
        for profile, parts in sorted(groups.items()):
            try:
                fresh |= self._fetch_profile(profile, parts, now)
            except AccountError as exc:
                self.holds.block_account(str(exc), profile)
                self._hold_back(parts, self.holds.account_wait(self.clock.now(), profile))
            except DaemonError as exc:  # this service's outage: its batches wait, the others' are polled
                failures = self._profile_failures[profile] = self._profile_failures.get(profile, 0) + 1
                wait = backoff_after(failures)
                log.warning("poll_failed", profile=profile, error=str(exc), retry_in=wait, failures=failures)
                self._hold_back(parts, wait)
            else:
                self._profile_failures.pop(profile, None)
        return fresh

    def _hold_back(self, parts: list[Part], wait: float) -> None:
        with self.store.transaction():
            for part in parts:
                self.store.update_part(part.id, next_action_at=self.clock.now() + wait)

    def _fetch_profile(self, profile: str, due: list[Part], now: float) -> dict[str, BatchInfo]:
        remote = self.services.of(profile)
        wanted = {p.batch_id for p in due if p.batch_id}
        fresh: dict[str, BatchInfo] = {}
        if len(wanted) >= LIST_WHEN_AT_LEAST and remote.profile.supports_list:  # else one retrieve each
            oldest = min(p.submitted_at or 0.0 for p in due)
            newest = max((p for p in due if p.batch_id), key=lambda p: p.submitted_at or 0.0).batch_id
            fresh = remote.list_batches(oldest, wanted, newest)
        for batch_id in wanted - fresh.keys():
            try:
                fresh[batch_id] = remote.retrieve(batch_id)
            except NotFoundError as exc:  # not listed either: the service may have lost it
                self._ended += self.lost.missing(next(p for p in due if p.batch_id == batch_id), exc, now)
            except PermanentError as exc:  # one batch the service refuses must not stall all the others
                self._set_aside(next(p for p in due if p.batch_id == batch_id), exc)
            except MalformedReplyError as exc:  # nor one the service answers with garbage for
                self._ask_later(next(p for p in due if p.batch_id == batch_id), exc, remote.profile.min_poll_interval)
        self.holds.clear_account(profile)
        return fresh

    def _ask_later(self, part: Part, exc: MalformedReplyError, floor: float) -> None:
        """A transient fault of this one batch: asked again with the usual growing poll wait, never
        sooner than its profile's ``floor``."""
        wait = min(max(part.poll_wait, self.settings.first_poll_after) * 2, self.settings.poll_interval)
        wait = max(wait, floor)
        self.store.update_part(part.id, last_error=str(exc), poll_wait=wait, next_action_at=self.clock.now() + wait)
        log.info("batch_poll_deferred", job_id=part.job_id, part=part.label, batch_id=part.batch_id, error=str(exc))

    def _set_aside(self, part: Part, exc: PermanentError) -> None:
        wait = self.settings.poll_interval
        self.store.update_part(part.id, last_error=str(exc), next_action_at=self.clock.now() + wait)
        log.error("batch_poll_refused", job_id=part.job_id, part=part.label, batch_id=part.batch_id, error=str(exc))

    def _record(self, part: Part, batch: BatchInfo, now: float, floor: float = 0.0) -> bool:
        """Store the batch's new state; True when it reached a terminal status. The next poll comes
        no sooner than ``floor`` seconds from now."""
        self.lost.seen(batch.id, ended=batch.status in TERMINAL_BATCH_STATUSES)
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
        self.stuck.check(part, batch, now)
        if batch.status in TERMINAL_BATCH_STATUSES:
            self.store.update_part(
                part.id,
                state=PartState.FINISHED,
                batch_status=batch.status,
                batch_json=batch.to_json(),
                next_action_at=0,
            )
            return True
        wait = min(max(part.poll_wait, self.settings.first_poll_after) * 2, self.settings.poll_interval)
        wait = max(wait, floor)
        self.store.update_part(
            part.id,
            batch_status=batch.status,
            batch_json=batch.to_json(),
            poll_wait=wait,
            next_action_at=now + wait,
        )
        return False


def backoff_after(failures: int) -> float:
    """The wait after ``failures`` failed passes in a row: 1 s, doubling, at most ERROR_BACKOFF."""
    return min(ERROR_BACKOFF, FIRST_ERROR_BACKOFF * 2.0 ** min(failures - 1, 16))


def _progress(batch: BatchInfo) -> tuple[int, int]:
    counts = batch.request_counts
    if counts is None:
        return 0, 0
    return (counts.completed or 0) + (counts.failed or 0), counts.total or 0
