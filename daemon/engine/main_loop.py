"""The engine: the main loop that claims files and hands every due step to a worker.

The main thread owns intake (hints from the watcher, a periodic full rescan), dispatch, the
heartbeat and shutdown. Workers run the slow steps (validate and split, upload and create,
download and merge); one poller thread refreshes batch statuses. Each step starts from what the
state says, so the loop can be stopped at any point and started again.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from functools import partial

from watchdog.observers.api import BaseObserver

from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.doorbell import Doorbell
from daemon.engine.lane_router import LaneRouter
from daemon.http_endpoints import Endpoint
from daemon.intake.claim import Intake, recover_claims
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.intake.watcher import Hint, start_observer
from daemon.lanes import Lane, Lanes, lane_sizes
from daemon.logs import get_logger
from daemon.ops.command_desk import CommandDesk, HandlerFactory
from daemon.ops.job_notifications import job_notifications
from daemon.ops.lost_state_guard import RECOVER_HINT, lost_database
from daemon.ops.metrics import metrics_server
from daemon.ops.sd_notify import Notifier
from daemon.ops.seed_import import SeedImport
from daemon.ops.signals import StopFlags
from daemon.providers import DEFAULT_PROFILE
from daemon.results.abandonment import Abandonment
from daemon.results.collector import Collector
from daemon.service.batch_service import BatchService
from daemon.service.holds import Holds
from daemon.service.poller import Poller
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.service.remote_cleanup import Hygiene
from daemon.service.submitter import Submitter
from daemon.service.webhooks import webhook_server
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.workers import STORAGE_ERRORS, Workers, storage_reason

log = get_logger(__name__)
MIN_PASS_GAP = 0.05
SUBMIT_STATES = (PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED, PartState.BATCH_INTENT)
DISPATCH_STATES = (*SUBMIT_STATES, PartState.FINISHED)  # the parts run_once hands to a worker when due
SHUTDOWN_GRACE = 6.0  # of the 10 s a stop may take, how long running steps may go on
PASS_RETRY = 5.0  # after a pass failed on local storage
SETTLE_LOOK = 0.5  # at most this long between looks at a file still settling
PREPARE_CHUNK = 50  # claimed jobs per preparation task
# Jobs are looked over for merging and abandonment when something may have changed them (a wake-up,
# another process's write); at least this often besides, should a change come by a way that rings nothing.
RESYNC_INTERVAL = 300.0


class Engine:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: BatchService | ProfileServices,
        flags: StopFlags,
        notifier: Notifier | None = None,
        clock: Clock = WALL_CLOCK,
        commands: HandlerFactory | None = None,
    ) -> None:
        """Build every part; no thread starts before ``start``. With ``commands`` (how to carry out each
        kind), the daemon takes the operators' commands (ops/command_desk.py); without, they act directly."""
        self.settings = settings
        self.store = store
        self.flags = flags
        self.clock = clock  # every timing rule reads the time from it
        self.hints: queue.Queue[Hint | None] = queue.Queue()
        # The main loop sleeps on it until its next timer: rung by a hint, a finished step, or the stop flag.
        self.bell = Doorbell()
        flags.stop.attach(self.bell)
        self.holds = Holds(store, clock, settings.token_limit_ttl)
        self.intake = Intake(
            settings.pending,
            settings.state,
            store,
            settings.min_file_age,
            settings.settle_seconds,
            clock,
            profiles={DEFAULT_PROFILE, *settings.providers},
        )
        services = profile_services(remote)  # one per provider profile: each job's steps use its own
        self.services = services
        self.submitter = Submitter(settings, store, services, self.holds, flags.stop, clock=clock)
        self.collector = Collector(settings, store, services, self.holds, flags.stop, clock=clock)
        self.hygiene = Hygiene(store, services, self.holds, flags.stop, clock)
        self.seed_import = SeedImport(settings, store, services.default, flags.stop, clock)
        self.packer = Packer(settings, store, batch_limits(settings), self.wake, clock)
        self.poller = Poller(settings, store, services, self.holds, flags.stop, self.wake, clock)
        # The optional endpoints, built before any thread starts: a missing webhook secret stops us cleanly.
        self.metrics = metrics_server(settings, store, self.holds)
        self.webhooks = webhook_server(settings, services.default, self.poller.refresh_now, store)
        self.endpoints: list[Endpoint] = [e for e in (self.metrics, self.webhooks) if e]
        self.notifications = job_notifications(settings, store, flags.stop)  # on_job_done; None when off
        self.workers = Lanes(lane_sizes(settings), lambda size: Workers(size, self.wake, clock))
        self.router = LaneRouter(settings, store, PREPARE_CHUNK)
        self.abandonment = Abandonment(store, self.collector, self.workers.busy)
        self.commands = (
            CommandDesk(settings.root, store, commands(settings, store, services), flags.stop) if commands else None
        )
        self.observer: BaseObserver | None = None  # started in start(): watchdog's constructors start threads
        self._rung = False  # a wake-up arrived during the gap after a pass: the next sleep is skipped
        self._data_version = store.data_version()
        self._next_resync = 0.0
        self._next_scan = 0.0
        self._preparing: set[str] = set()  # claimed jobs handed to a worker, not yet prepared
        self._preparing_lock = threading.Lock()  # the main loop adds to it, workers take out of it
        self._pass_failed = False
        self._next_heartbeat = 0.0
        self.notifier = notifier or Notifier({})  # an empty environment: silent outside systemd
        interval = self.notifier.watchdog_interval()
        # Ping at half systemd's WatchdogSec, so one slow pass does not get the daemon killed.
        self._watchdog_every = interval / 2 if interval else None
        self._next_watchdog = 0.0
        self.exit_code = 0  # 2 once the state database was found removed or replaced

    def wake(self) -> None:
        self.bell.ring()

    def start(self) -> None:
        """Recover what a crash interrupted, start the threads (workers, watcher, poller, endpoints), scan once."""
        recover_claims(self.store)
        self.holds.date_old_limits()
        self.packer.sweep()
        self.workers.start()
        self.observer = self._watch()
        self.poller.start()
        for endpoint in self.endpoints:
            endpoint.start()
        if self.commands is not None:
            self.commands.open(self.settings.watch_mode, self.bell.ring)
        if self.notifications is not None:
            self.notifications.start()
        self.run_once(self.clock.now())
        log.info(
            "daemon_started",
            root=str(self.settings.root),
            pid=os.getpid(),
            open_jobs=self._open_jobs(),
        )
        self.notifier.ready()
        self.notifier.status(self._status_line())

    def _open_jobs(self) -> int:
        return self.store.count_jobs([JobState.CLAIMED, JobState.ACTIVE, JobState.COLLECTING])

    def _status_line(self) -> str:
        """What `systemctl status` shows."""
        line = f"{self._open_jobs()} open job(s); watching {self.settings.pending}"
        reason = self.holds.account_reason
        return f"{line}; paused: {reason}" if reason else line

    def _ping_watchdog(self, now: float) -> None:
        # No ping while the poller is dead: systemd then restarts us, as a container health check would.
        if self._watchdog_every is None or now < self._next_watchdog or not self.poller.is_alive():
            return
        self._next_watchdog = now + self._watchdog_every
        self.notifier.watchdog()

    def run(self) -> None:
        while not self.flags.stop.is_set():
            rung = self._sleep_until_due()
            if not self.flags.stop.is_set():
                self._run_pass(rung)
                if rung:
                    # Every finished step wakes the loop; with hundreds running, passes back to back
                    # would only re-read the state. A short gap lets wake-ups pile into one pass.
                    self._pause(MIN_PASS_GAP)

    def _sleep_until_due(self) -> bool:
        """Sleep until the next timer (see wake_time) or a wake-up (then True): an idle daemon makes no others."""
        if self._rung:
            self._rung = False
            return True
        return self.bell.wait(max(0.0, self.wake_time(self.clock.now()) - self.clock.now()))

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopped; a wake-up meanwhile is kept for the next sleep."""
        deadline = time.monotonic() + seconds  # a pure wait, not a timing rule: the monotonic clock
        while not self.flags.stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self._rung = self.bell.wait(left) or self._rung

    def wake_time(self, now: float) -> float:
        """When the next thing is due by the clock: the rescan, the heartbeat, the watchdog ping, a
        part's next step, the end of a step's cooldown, a waiting pack. Everything else rings the bell."""
        timers = [self._next_scan, self._next_heartbeat]
        if self._watchdog_every is not None and self.poller.is_alive():  # no ping for a dead poller: see _ping_watchdog
            timers.append(self._next_watchdog)
        due = self.store.next_due_of(DISPATCH_STATES, after=now)
        timers += [t for t in (due, self.workers.next_ready()) if t is not None]
        cooled = self.packer.quarantine.next_ready()
        if cooled is not None:
            timers.append(cooled)
        if self.packer.due():  # small inputs wait for company: look again when the wait may be over
            timers.append(now + max(self.settings.pack_wait, MIN_PASS_GAP))
        if self.intake.settling():  # a closed file is claimed once quiet: look a few times per window
            timers.append(now + min(max(self.settings.settle_seconds / 4, MIN_PASS_GAP), SETTLE_LOOK))
        return min(timers)

    def _run_pass(self, rung: bool) -> None:
        """One pass that survives a full disk or an unwritable state: report, wait, try again."""
        try:
            if self._pass_failed:
                recover_claims(self.store)  # a failed pass may have left a claim half recorded
            now = self.clock.now()
            self.run_once(now, changed=rung or self._pass_failed or self._changed_elsewhere(now))
            self._pass_failed = False
        except STORAGE_ERRORS as exc:
            self._pass_failed = True
            log.error("loop_pass_failed", error=storage_reason(exc), retry_in=PASS_RETRY)
            self._pause(PASS_RETRY)

    def _changed_elsewhere(self, now: float) -> bool:
        """Whether another process wrote to the state since the last look, or the resync time came."""
        version = self.store.data_version()
        changed, self._data_version = version != self._data_version, version
        return changed or now >= self._next_resync

    def run_once(self, now: float, *, changed: bool = True) -> None:
        """One pass: claim complete files, then dispatch every step that is due. Unless the state may
        have ``changed`` since the last pass, the jobs are not looked over for merging and abandonment
        (that reads every open job: with thousands tracked, most of an idle daemon's time)."""
        self._claim_ready(now)
        self._dispatch_commands()
        self._dispatch_preparation()
        if self.packer.due():
            self.workers.submit(Lane.SUBMIT, ("packer",), self.packer.run)
        for lane, part_id in self.router.submission(SUBMIT_STATES, now):
            self.workers.submit(lane, ("part", part_id), partial(self._submit, part_id))
        for part_id in self.store.due_part_ids((PartState.FINISHED,), now):
            self.workers.submit(Lane.COLLECT, ("part", part_id), partial(self.collector.collect_part, part_id))
        if changed:
            self._next_resync = now + RESYNC_INTERVAL
            self._dispatch_job_endings()
            if self.notifications is not None:  # a job that ended rang the bell: its notice is owed now
                self.notifications.look()
            self.poller.wake.set()  # it sleeps until the next batch it knows is due: a new one may be sooner
        if self.settings.delete_remote_files and self.hygiene.due(now):
            self.workers.submit(Lane.COLLECT, ("hygiene",), self.hygiene.run_due)
        if self.seed_import.due(now):  # the seed script's batch_ids.txt, imported once
            self.workers.submit(Lane.COLLECT, ("seed-import",), self.seed_import.run)
        self._keep_watcher_alive()
        if now >= self._next_heartbeat:
            self._beat(now)
        self._ping_watchdog(now)

    def _dispatch_job_endings(self) -> None:
        for job_id in self.store.finishable_job_ids():
            self.workers.submit(Lane.COLLECT, ("job", job_id), partial(self.collector.finish_job, job_id))
        for job_id in self.abandonment.due():  # `batchd abandon` asked; same key: never beside finish_job
            self.workers.submit(Lane.COLLECT, ("job", job_id), partial(self.abandonment.end, job_id))

    def _dispatch_commands(self) -> None:
        """The operators' commands (`batchd cancel` ...), each a step of its own: cancel calls the service."""
        if self.commands is None:
            return
        for command in self.commands.claim():
            self.workers.submit(Lane.COLLECT, ("command", command.id), partial(self.commands.carry_out, command))

    def _submit(self, part_id: int) -> None:
        self.submitter.advance(part_id)
        # A batch just created is first polled after first_poll_after, not at the poller's next idle look.
        self.poller.wake.set()

    def _dispatch_preparation(self) -> None:
        """Claimed jobs go to the workers in chunks: one commit per chunk, not one per small file;
        a big one alone to its own lane (see lane_router). Ids only here: this runs on every pass,
        and a burst can leave a thousand jobs claimed."""
        cooling = self.packer.quarantine.cooling  # a check that failed on a job waits a little
        with self._preparing_lock:
            busy = set(self._preparing)
        waiting = [i for i in self.store.job_ids(JobState.CLAIMED) if i not in busy and not cooling(i)]
        for lane, ids in self.router.preparation(waiting):
            with self._preparing_lock:
                self._preparing.update(ids)
            if not self.workers.submit(lane, ("prepare", ids[0]), partial(self._prepare, ids)):
                self._done_preparing(ids)  # cooling down after a storage error: offered later

    def _prepare(self, ids: list[str]) -> None:
        try:
            prepare_jobs(self.settings, self.store, [self.store.job(i) for i in ids], self.packer.quarantine)
        finally:
            self._done_preparing(ids)

    def _done_preparing(self, ids: list[str]) -> None:
        with self._preparing_lock:
            self._preparing.difference_update(ids)

    def _claim_ready(self, now: float) -> None:
        names: set[str] = set()
        while True:
            try:
                hint = self.hints.get_nowait()
            except queue.Empty:
                break
            name = None if hint is None else self.intake.note(hint.path, complete=hint.complete, closed=hint.closed)
            if name is not None:  # its name in the drop zone: NAME/file.jsonl in a profile's folder
                names.add(name)
        if now >= self._next_scan:
            self._next_scan = now + self.settings.scan_interval
            ready = self.intake.ready_files()
        else:
            ready = self.intake.ready_files(sorted(names))  # and the closed files still settling
        self.intake.claim_all(ready)

    def _watch(self) -> BaseObserver:
        return start_observer(self.settings.pending, self.hints, self.settings.watch_mode, self.bell.ring)

    def _keep_watcher_alive(self) -> None:
        # watchdog's thread dies on some errors (e.g. the folder vanished); the rescan covers
        # the gap, and a fresh observer brings fast intake back.
        if self.observer is not None and not self.observer.is_alive() and not self.flags.stop.is_set():
            log.error("watcher_died", folder=str(self.settings.pending), action="restarting")
            self.observer = self._watch()

    def _beat(self, now: float) -> None:
        self._next_heartbeat = now + self.settings.heartbeat_interval
        lost = lost_database(self.store)
        if lost is not None:  # every later write would go to a file nobody will read again
            log.error("state_database_lost", problem=lost, action="stopping", hint=RECOVER_HINT)
            self.exit_code = 2
            self.flags.stop.set()
            return
        beat = {
            "at": now,
            "pid": os.getpid(),
            "watcher_alive": self.observer is not None and self.observer.is_alive(),
            "poller_alive": self.poller.is_alive(),
            "last_poll": self.poller.last_success,
            "account_blocked": self.holds.account_reason or None,
            "account_holds": self.holds.account_reasons(),  # by provider profile (read by status)
        }
        with self.store.unsynced():
            self.store.set_fact("heartbeat", json.dumps(beat))
        if self.notifier.enabled:  # the line counts the open jobs: not worth it for nobody
            self.notifier.status(self._status_line())

    def shutdown(self) -> None:
        """Stop intake, give running steps a moment, and leave the rest to the next start."""
        self.flags.stop.set()
        self.notifier.stopping()
        for endpoint in self.endpoints:
            endpoint.stop()
        if self.commands is not None:
            self.commands.close()
        if self.notifications is not None:
            self.notifications.stop()
        if self.observer is not None:
            self.observer.stop()
        self.workers.stop(SHUTDOWN_GRACE, self.flags.force)
        self.poller.wake.set()
        if self.poller.is_alive():  # not started if start() failed
            self.poller.join(timeout=1.0)
        if self.observer is not None:
            self.observer.join(timeout=1.0)
        self.flags.stop.detach(self.bell)
        self.bell.close()
        try:
            self.store.set_fact("heartbeat", json.dumps({"at": 0, "pid": os.getpid(), "stopped": True}))
        except STORAGE_ERRORS as exc:  # a full disk must not turn a clean stop into a crash
            log.error("heartbeat_not_cleared", error=storage_reason(exc))
        log.info("daemon_stopped", idle=self.workers.idle())
