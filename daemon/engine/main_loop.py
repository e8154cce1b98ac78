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

from daemon.config import Settings
from daemon.intake.claim import Intake, recover_claims
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.intake.watcher import Hint, start_observer
from daemon.logs import get_logger
from daemon.ops.lost_state_guard import RECOVER_HINT, lost_database
from daemon.ops.metrics import MetricsServer, metrics_server
from daemon.ops.sd_notify import Notifier
from daemon.ops.seed_import import SeedImport
from daemon.ops.signals import StopFlags
from daemon.results.abandonment import Abandonment
from daemon.results.collector import Collector
from daemon.service.batch_service import BatchService
from daemon.service.holds import Holds
from daemon.service.poller import Poller
from daemon.service.remote_cleanup import Hygiene
from daemon.service.submitter import Submitter
from daemon.service.webhooks import WebhookServer, webhook_server
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from daemon.workers import STORAGE_ERRORS, Workers, storage_reason

log = get_logger(__name__)
TICK = 0.25  # the longest the loop sleeps between looks at its queue and the stop flag
MIN_PASS_GAP = 0.05
SUBMIT_STATES = (PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED, PartState.BATCH_INTENT)
SHUTDOWN_GRACE = 6.0  # of the 10 s a stop may take, how long running steps may go on
PASS_RETRY = 5.0  # after a pass failed on local storage
PREPARE_CHUNK = 50  # claimed jobs per preparation task


class Engine:
    def __init__(
        self, settings: Settings, store: Store, remote: BatchService, flags: StopFlags, notifier: Notifier | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.flags = flags
        self.hints: queue.Queue[Hint | None] = queue.Queue()
        self.holds = Holds(store)
        self.intake = Intake(settings.pending, settings.state, store, settings.min_file_age)
        self.submitter = Submitter(settings, store, remote, self.holds, flags.stop)
        self.collector = Collector(settings, store, remote, self.holds, flags.stop)
        self.hygiene = Hygiene(store, remote, self.holds, flags.stop)
        self.seed_import = SeedImport(settings, store, remote, flags.stop)
        self.packer = Packer(settings, store, batch_limits(settings), self.wake)
        self.poller = Poller(settings, store, remote, self.holds, flags.stop, self.wake)
        # The optional endpoints, built before any thread starts: a missing webhook secret stops us cleanly.
        self.metrics = metrics_server(settings, store, self.holds)
        self.webhooks = webhook_server(settings, remote, self.poller.refresh_now)
        self.endpoints: list[MetricsServer | WebhookServer] = [e for e in (self.metrics, self.webhooks) if e]
        self.workers = Workers(settings.workers, self.wake)
        self.abandonment = Abandonment(store, self.collector, self.workers.busy)
        self.observer = start_observer(settings.pending, self.hints, settings.watch_mode)
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
        self.hints.put(None)

    def start(self) -> None:
        """Recover what a crash interrupted, scan once, and start polling."""
        recover_claims(self.store)
        self.packer.sweep()
        self.poller.start()
        for endpoint in self.endpoints:
            endpoint.start()
        self.run_once(time.time())
        log.info(
            "daemon_started",
            root=str(self.settings.root),
            pid=os.getpid(),
            open_jobs=self._open_jobs(),
        )
        self.notifier.ready()
        self.notifier.status(self._status_line())

    def _open_jobs(self) -> int:
        return len(self.store.jobs([JobState.CLAIMED, JobState.ACTIVE, JobState.COLLECTING]))

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
            self._wait_for_hint()
            if not self.flags.stop.is_set():
                self._run_pass()
                # Every finished step wakes the loop; with hundreds running, passes back to back
                # would only re-read the state. A short gap lets wake-ups pile into one pass.
                self.flags.stop.wait(MIN_PASS_GAP)

    def _run_pass(self) -> None:
        """One pass that survives a full disk or an unwritable state: report, wait, try again."""
        try:
            if self._pass_failed:
                recover_claims(self.store)  # a failed pass may have left a claim half recorded
            self.run_once(time.time())
            self._pass_failed = False
        except STORAGE_ERRORS as exc:
            self._pass_failed = True
            log.error("loop_pass_failed", error=storage_reason(exc), retry_in=PASS_RETRY)
            self.flags.stop.wait(PASS_RETRY)

    def _wait_for_hint(self) -> None:
        try:
            hint = self.hints.get(timeout=TICK)
        except queue.Empty:
            return
        if hint is not None:
            self.hints.put(hint)  # leave it for run_once to read with the others

    def run_once(self, now: float) -> None:
        """One pass: claim complete files, then dispatch every step that is due."""
        self._claim_ready(now)
        self._dispatch_preparation()
        if self.packer.due():
            self.workers.submit(("packer",), self.packer.run)
        for part_id in self.store.due_part_ids(SUBMIT_STATES, now):
            self.workers.submit(("part", part_id), partial(self._submit, part_id))
        for part_id in self.store.due_part_ids((PartState.FINISHED,), now):
            self.workers.submit(("part", part_id), partial(self.collector.collect_part, part_id))
        for job_id in self.store.finishable_job_ids():
            self.workers.submit(("job", job_id), partial(self.collector.finish_job, job_id))
        for job_id in self.abandonment.due():  # `batchd abandon` asked; same key: never beside finish_job
            self.workers.submit(("job", job_id), partial(self.abandonment.end, job_id))
        if self.settings.delete_remote_files and self.hygiene.due(now):
            self.workers.submit(("hygiene",), self.hygiene.run_due)
        if self.seed_import.due(now):  # the seed script's batch_ids.txt, imported once
            self.workers.submit(("seed-import",), self.seed_import.run)
        self._keep_watcher_alive()
        if now >= self._next_heartbeat:
            self._beat(now)
        self._ping_watchdog(now)

    def _submit(self, part_id: int) -> None:
        self.submitter.advance(part_id)
        # A batch just created is first polled after first_poll_after, not at the poller's next idle look.
        self.poller.wake.set()

    def _dispatch_preparation(self) -> None:
        """Claimed jobs go to the workers in chunks: one commit per chunk, not one per small file.
        Ids only here: this runs on every pass, and a burst can leave a thousand jobs claimed."""
        cooling = self.packer.quarantine.cooling  # a check that failed on a job waits a little
        with self._preparing_lock:
            busy = set(self._preparing)
        waiting = [i for i in self.store.job_ids(JobState.CLAIMED) if i not in busy and not cooling(i)]
        for start in range(0, len(waiting), PREPARE_CHUNK):
            ids = waiting[start : start + PREPARE_CHUNK]
            with self._preparing_lock:
                self._preparing.update(ids)
            if not self.workers.submit(("prepare", ids[0]), partial(self._prepare, ids)):
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
            if hint is not None:
                self.intake.note(hint.path, complete=hint.complete)
                names.add(hint.path.name)
        if now >= self._next_scan:
            self._next_scan = now + self.settings.scan_interval
            ready = self.intake.ready_files()
        else:
            ready = self.intake.ready_files(sorted(names)) if names else []
        self.intake.claim_all(ready)

    def _keep_watcher_alive(self) -> None:
        # watchdog's thread dies on some errors (e.g. the folder vanished); the rescan covers
        # the gap, and a fresh observer brings fast intake back.
        if not self.observer.is_alive() and not self.flags.stop.is_set():
            log.error("watcher_died", folder=str(self.settings.pending), action="restarting")
            self.observer = start_observer(self.settings.pending, self.hints, self.settings.watch_mode)

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
            "watcher_alive": self.observer.is_alive(),
            "poller_alive": self.poller.is_alive(),
            "last_poll": self.poller.last_success,
            "account_blocked": self.holds.account_reason or None,
        }
        self.store.set_fact("heartbeat", json.dumps(beat))
        self.notifier.status(self._status_line())

    def shutdown(self) -> None:
        """Stop intake, give running steps a moment, and leave the rest to the next start."""
        self.flags.stop.set()
        self.notifier.stopping()
        for endpoint in self.endpoints:
            endpoint.stop()
        self.observer.stop()
        self.workers.stop(SHUTDOWN_GRACE, self.flags.force)
        self.poller.wake.set()
        self.poller.join(timeout=1.0)
        self.observer.join(timeout=1.0)
        try:
            self.store.set_fact("heartbeat", json.dumps({"at": 0, "pid": os.getpid(), "stopped": True}))
        except STORAGE_ERRORS as exc:  # a full disk must not turn a clean stop into a crash
            log.error("heartbeat_not_cleared", error=storage_reason(exc))
        log.info("daemon_stopped", idle=self.workers.idle())
