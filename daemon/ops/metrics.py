"""The optional Prometheus endpoint: what batchd is doing, read from the state at scrape time.

Off unless ``metrics_port`` is set; bound to 127.0.0.1 unless ``metrics_address`` says otherwise.
A custom collector reads the state database on every scrape, so the figures agree with each
other and with ``batchd status``, and survive restarts. Only what the state does not hold is kept
in memory: API errors by class (counted where errors are classified, reset by a restart as
Prometheus counters may be) and whether the account is on hold. A private registry keeps the
process-wide default one out of it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.config import Settings
from daemon.http_endpoints import port_error
from daemon.http_listener import HttpListener
from daemon.logs import get_logger
from daemon.ops.limit_gauges import limit_gauges
from daemon.providers import DEFAULT_PROFILE
from daemon.service.batch_info import BatchInfo
from daemon.service.holds import Holds
from daemon.service.sdk_errors import error_counts_by_profile
from daemon.service.stuck_watch import STUCK_AFTER, status_since, stuck_limit
from daemon.state.states import ACTIVE_BATCH_STATUSES, TERMINAL_BATCH_STATUSES, JobState, PartState
from daemon.state.store import Store
from daemon.wsgi_bridge import wsgi_handler

log = get_logger(__name__)
ERROR_CLASSES = ("transient", "account", "permanent")


class StateCollector(Collector):
    """Builds every metric from the state database when Prometheus scrapes."""

    def __init__(self, settings: Settings, store: Store, holds: Holds | None = None) -> None:
        self.settings = settings
        self.store = store
        self.holds = holds

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        jobs = self.store.state_counts_by_profile("jobs")
        parts = self.store.state_counts_by_profile("parts")
        statuses = self.store.batch_status_counts_by_profile()
        profiles = self._profiles(jobs)
        yield from self._files(jobs, profiles)
        yield _by_label("batchd_jobs", "Jobs (input files) by state.", "state", JobState, jobs, profiles)
        yield _by_label("batchd_parts", "Parts (one batch each) by state.", "state", PartState, parts, profiles)
        known = ACTIVE_BATCH_STATUSES | TERMINAL_BATCH_STATUSES
        yield _by_label("batchd_batches", "Batches by last seen status.", "status", known, statuses, profiles)
        yield self._requests(profiles)
        yield self._api_errors(profiles)
        yield from self._timings(now)
        yield self._enqueued()
        yield from limit_gauges(self.store, now, self.settings.token_limit_ttl)
        yield self._stuck(now, profiles)
        if self.holds is not None:
            blocked = GaugeMetricFamily(
                "batchd_account_blocked", "1 while an account error holds the profile's inputs.", labels=["profile"]
            )
            reasons = self.holds.account_reasons()
            for profile in profiles:
                blocked.add_metric([profile], 1.0 if profile in reasons else 0.0)
            yield blocked

    def _profiles(self, jobs: dict[tuple[str, str], int]) -> list[str]:
        """Every configured profile (its series are there from the start), and any a job still names."""
        return sorted({DEFAULT_PROFILE, *self.settings.providers, *(profile for profile, _ in jobs)})

    def _files(self, jobs: dict[tuple[str, str], int], profiles: list[str]) -> Iterator[Metric]:
        # Job rows are never removed once claimed, so these only grow: counters.
        claimed = CounterMetricFamily(
            "batchd_files_claimed", "Input files claimed from the drop zone.", labels=["profile"]
        )
        rejected = CounterMetricFamily(
            "batchd_files_rejected", "Input files rejected by validation (moved to failed/).", labels=["profile"]
        )
        for profile in profiles:
            mine = {state: n for (owner, state), n in jobs.items() if owner == profile}
            claimed.add_metric([profile], sum(n for state, n in mine.items() if state != JobState.CLAIMING))
            rejected.add_metric([profile], mine.get(JobState.REJECTED, 0))
        yield claimed
        yield rejected

    def _requests(self, profiles: list[str]) -> Metric:
        totals = self.store.request_totals_by_profile()
        family = CounterMetricFamily(
            "batchd_requests", "Requests the service reports as done, by outcome.", labels=["outcome", "profile"]
        )
        for profile in profiles:
            succeeded, failed = totals.get(profile, (0, 0))
            family.add_metric(["succeeded", profile], succeeded)
            family.add_metric(["failed", profile], failed)
        return family

    def _api_errors(self, profiles: list[str]) -> Metric:
        base = {(kind, profile): 0 for kind in ERROR_CLASSES for profile in profiles}
        counts = base | error_counts_by_profile()
        family = CounterMetricFamily(
            "batchd_api_errors",
            "Failed API calls by class since start (each try counts).",
            labels=["class", "profile"],
        )
        for (kind, profile), n in sorted(counts.items()):
            family.add_metric([kind, profile], n)
        return family

    def _timings(self, now: float) -> Iterator[Metric]:
        last = self.store.fact("last_poll")
        if last is not None:  # no sample before the first poll: absent is clearer than a huge number
            yield _gauge(
                "batchd_seconds_since_last_successful_poll",
                "Seconds since a status check of the due batches last succeeded.",
                max(0.0, now - float(last)),
            )
        oldest = self.store.oldest_submitted_at()
        yield _gauge(
            "batchd_oldest_active_batch_age_seconds",
            "Age of the oldest batch still running at the service (0: none).",
            0.0 if oldest is None else max(0.0, now - oldest),
        )

    def _enqueued(self) -> Metric:
        family = GaugeMetricFamily(
            "batchd_enqueued_tokens",
            "Estimated input tokens of unfinished batches, by model (each service limits these per model).",
            labels=["model", "profile"],
        )
        for (profile, model), tokens in sorted(self.store.enqueued_tokens_by_profile_model().items()):
            family.add_metric([model, profile], tokens)
        return family

    def _stuck(self, now: float, profiles: list[str]) -> Metric:
        counts = {(status, profile): 0 for status in STUCK_AFTER for profile in profiles}
        for profile, batch in self._running_batches():
            limit, since = stuck_limit(self.settings, batch.status), status_since(batch)
            if limit is not None and since is not None and now - since > limit:
                counts[(batch.status, profile)] = counts.get((batch.status, profile), 0) + 1
        family = GaugeMetricFamily(
            "batchd_batches_stuck",
            "Batches longer than their stuck_*_after setting in validating, finalizing or cancelling.",
            labels=["status", "profile"],
        )
        for (status, profile), n in sorted(counts.items()):
            family.add_metric([status, profile], n)
        return family

    def _running_batches(self) -> Iterator[tuple[str, BatchInfo]]:
        """(profile, batch) of every batch still running."""
        routed = self.store.routed_jobs()
        for part in self.store.parts_in([PartState.SUBMITTED]):
            if part.batch_json:
                yield routed.get(part.job_id, DEFAULT_PROFILE), BatchInfo.from_json(part.batch_json)


def _by_label(
    name: str,
    doc: str,
    label: str,
    known: Iterable[str],
    counts: dict[tuple[str, str], int],
    profiles: list[str],
) -> Metric:
    """One series per (value, profile): every known value of every profile, zero when none."""
    family = GaugeMetricFamily(name, doc, labels=[label, "profile"])
    base = {(profile, str(value)): 0 for profile in profiles for value in known}
    for (profile, value), n in sorted((base | counts).items(), key=lambda item: (item[0][1], item[0][0])):
        family.add_metric([value, profile], n)
    return family


def _counter(name: str, doc: str, value: float) -> Metric:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _gauge(name: str, doc: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


class MetricsServer:
    """The HTTP endpoint (any path serves the metrics), on the bounded listener."""

    def __init__(self, settings: Settings, store: Store, holds: Holds | None = None) -> None:
        assert settings.metrics_port is not None
        self.settings = settings
        self.registry = CollectorRegistry()
        self.registry.register(StateCollector(settings, store, holds))
        self._listener: HttpListener | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system picked for port 0)."""
        assert self._listener is not None
        return self._listener.port

    def start(self) -> None:
        address, port = self.settings.metrics_address, self.settings.metrics_port or 0
        handler = wsgi_handler(make_wsgi_app(self.registry), address, port)
        listener = HttpListener("metrics", address, port, handler)
        try:
            listener.start()
        except OSError as exc:
            raise port_error("metrics_port", port, address, exc) from None
        self._listener = listener
        log.info("metrics_serving", address=address, port=self.port)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._listener = None


def metrics_server(settings: Settings, store: Store, holds: Holds | None = None) -> MetricsServer | None:
    """The endpoint when ``metrics_port`` is set, else None."""
    return None if settings.metrics_port is None else MetricsServer(settings, store, holds)
