"""The Prometheus endpoint, scraped over HTTP while the real daemon works against the emulator."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import load_settings
from daemon.errors import ConfigError

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of one scrape, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_METRICS_PORT": "70000"}, "metrics_port must be between 1 and 65535"),
        ({"BATCHD_METRICS_PORT": "0"}, "metrics_port must be between 1 and 65535"),
        ({"BATCHD_METRICS_PORT": "nine"}, "metrics_port"),
        ({"BATCHD_METRICS_ADDRESS": "localhost"}, "metrics_address must be an IP address"),
        ({"BATCHD_METRICS_PORT": "9464", "BATCHD_WEBHOOK_PORT": "9464"}, "must differ"),
    ],
)
def test_bad_metrics_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_metrics_settings_load() -> None:
    settings = load_settings(environ={"BATCHD_METRICS_PORT": "9464", "BATCHD_METRICS_ADDRESS": "::1"})
    assert (settings.metrics_port, settings.metrics_address) == (9464, "::1")
    assert load_settings(environ={}).metrics_port is None
