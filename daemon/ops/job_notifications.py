"""on_job_done: tell someone when a job ends, without ever holding up the daemon.

Durable: the state database owes a notice for every input job that ended (the ``job_notices`` table,
filled by a trigger in the transaction that ends the job, see state/notice_queries.py). The main loop
only looks, on a pass that may have changed something, and queues what is owed (at most QUEUE_MAX
at once; the rest stays owed). One thread delivers them in order, to the command and/or the URL,
each retried with back-off (tenacity) and logged (``notification_sent`` / ``notification_failed``),
then drops the notice. A restart finds what was still owed and delivers it; one that was being
delivered at the stop may arrive twice (its ``X-Batchd-Delivery`` header is the same each time, for
the receiver to drop the repeat). While notifications are off, nothing is owed: endings before they
are turned on go untold.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_when_event_set, wait_exponential

from daemon.config import Settings
from daemon.errors import CredentialError, DaemonError
from daemon.logs import get_logger
from daemon.ops.job_notice import Notice, command_env, notice_for, signed_request
from daemon.service.credentials import NOTIFY_CREDENTIAL_NAME, KeySource, find_notify_secret
from daemon.state.rows import job_models
from daemon.state.store import Store

log = get_logger(__name__)
QUEUE_MAX = 1000  # notifications queued at once; the rest wait in the state, behind the cursor
ATTEMPTS = 6  # per notification and way (command, URL): about 1 + 2 + 4 + 8 + 16 s of back-off
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HTTP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
STDERR_KEPT = 500  # characters of a failing command's error output kept for the log


class DeliveryError(DaemonError):
    """One attempt at a delivery failed (worth trying again)."""


class JobNotifications:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        stop: threading.Event,
        secret: KeySource | None,
        backoff: float = BACKOFF_FIRST,
    ) -> None:
        self.settings = settings
        self.store = store
        self._stop = stop
        self._secret = secret
        self._backoff = backoff
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_MAX)  # job ids
        self._queued: set[str] = set()  # queued or being delivered (the main loop and the thread share it)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._deliver_all, name="notifications", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):  # full: the thread is busy and sees the stop flag after this one
            self._queue.put_nowait(None)
        self._thread.join(timeout=1.0)  # a delivery still retrying is cut short; the restart sends it

    def look(self) -> None:
        """Queue the notices owed that are not queued yet (main loop; never blocks)."""
        with self._lock:
            room = QUEUE_MAX - len(self._queued)
            if room <= 0:
                return
            for job_id in self.store.owed_notices(len(self._queued) + room):
                if job_id not in self._queued and len(self._queued) < QUEUE_MAX:
                    self._queued.add(job_id)
                    self._queue.put_nowait(job_id)

    def _deliver_all(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.store.job(job_id)
            notice = notice_for(job, job_models(job, self.store.parts(job_id)))
            if notice.event in self.settings.on_job_done_events:
                self._deliver(notice)
            if self._stop.is_set():
                return  # cut short: still owed, delivered after the restart
            self.store.drop_notice(job_id)
            with self._lock:
                self._queued.discard(job_id)

    def _deliver(self, notice: Notice) -> None:
        ways: list[tuple[str, Callable[[Notice], None]]] = []
        if self.settings.on_job_done_command:
            ways.append(("command", self._run_command))
        if self.settings.on_job_done_url:
            ways.append(("url", self._post))
        for to, way in ways:
            self._with_retries(to, way, notice)

    def _with_retries(self, to: str, way: Callable[[Notice], None], notice: Notice) -> None:
        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS) | stop_when_event_set(self._stop),
            wait=wait_exponential(multiplier=self._backoff, max=BACKOFF_MAX),
            retry=retry_if_exception_type(DeliveryError),
            sleep=self._pause,  # a stop cuts the back-off short
            reraise=True,
        )
        try:
            retrying(way, notice)
        except DeliveryError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            log.warning(
                "notification_failed",
                job_id=notice.job_id,
                ending=notice.event,
                to=to,
                attempts=attempts,
                error=str(exc),
            )
            return
        attempts = retrying.statistics.get("attempt_number", 1)
        log.info("notification_sent", job_id=notice.job_id, ending=notice.event, to=to, attempts=attempts)

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _run_command(self, notice: Notice) -> None:
        argv = list(self.settings.on_job_done_command)
        with tempfile.TemporaryFile() as errors:
            try:
                done = subprocess.run(
                    argv,
                    env=command_env(notice),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DeliveryError(f"{argv[0]} ran longer than {COMMAND_TIMEOUT:g} s") from None
            except OSError as exc:
                raise DeliveryError(f"cannot run {argv[0]}: {exc.strerror}") from None
            if done.returncode != 0:
                raise DeliveryError(f"{argv[0]} exited with {done.returncode}: {_tail(errors)}")

    def _post(self, notice: Notice) -> None:
        url, secret = self.settings.on_job_done_url, self._secret
        if url is None or secret is None:
            return
        body, headers = signed_request(notice, secret.read(), int(time.time()))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only (config)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as reply:  # noqa: S310
                reply.read(1024)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the connection
            raise DeliveryError(f"the receiver answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryError(f"cannot reach the receiver: {getattr(exc, 'reason', exc)}") from None


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0, 2)
    size = errors.tell()
    errors.seek(max(0, size - STDERR_KEPT))
    return errors.read().decode("utf-8", "replace").strip() or "no error output"


def job_notifications(settings: Settings, store: Store, stop: threading.Event) -> JobNotifications | None:
    """The notifications when on_job_done_command or on_job_done_url is set (a URL needs a secret), else None."""
    if not settings.on_job_done_command and not settings.on_job_done_url:
        dropped = store.drop_all_notices()
        if dropped:
            log.info("notifications_off", endings_not_told=dropped)
        return None
    secret = find_notify_secret() if settings.on_job_done_url else None
    if settings.on_job_done_url and secret is None:
        raise CredentialError(
            "on_job_done_url is set but there is no secret to sign the notifications with: set "
            "BATCHD_NOTIFY_SECRET, or BATCHD_NOTIFY_SECRET_FILE to a file holding it, or a systemd credential "
            f"named {NOTIFY_CREDENTIAL_NAME}; or unset on_job_done_url"
        )
    return JobNotifications(settings, store, stop, secret)
