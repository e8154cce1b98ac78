"""The learned enqueued-token limits as Prometheus gauges: each model's limit on each profile, its
age, and whether batchd still applies it (an alert on a limit that keeps being relearned low, or
on one applied for long, reads these)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from daemon.state.store import Store
from daemon.state.token_limits import learned_limits

_LABELS = ["model", "profile"]


def limit_gauges(store: Store, now: float, ttl: float) -> Iterator[Metric]:
    """Three gauges, one series per learned limit (none before a limit is learned)."""
    tokens = GaugeMetricFamily(
        "batchd_token_limit", "Enqueued-token limit learned from the service, by model.", labels=_LABELS
    )
    age = GaugeMetricFamily(
        "batchd_token_limit_age_seconds", "Seconds since the service named the learned limit.", labels=_LABELS
    )
    applied = GaugeMetricFamily(
        "batchd_token_limit_applied",
        "1 while the learned limit caps the model's batches, 0 once older than token_limit_ttl.",
        labels=_LABELS,
    )
    for limit in learned_limits(store):
        labels = [limit.model, limit.profile]
        tokens.add_metric(labels, limit.limit)
        seconds = limit.age(now)
        if seconds is not None:  # dated at the daemon's start: absent until then is clearer than a guess
            age.add_metric(labels, seconds)
        applied.add_metric(labels, 0.0 if limit.stale(now, ttl) else 1.0)
    yield from (tokens, age, applied)
