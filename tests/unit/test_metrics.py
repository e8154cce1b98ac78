"""The Prometheus endpoint, scraped over HTTP while the real daemon works against the emulator."""

from __future__ import annotations

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError


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
