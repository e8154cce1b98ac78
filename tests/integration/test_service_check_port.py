"""An unreachable service on a port of its own (a local gateway, the emulator) is named with that port:
"cannot reach 127.0.0.1" alone sends the user looking at the host, which is fine."""

from __future__ import annotations

from structlog.testing import capture_logs

from daemon.ops.service_check import check_services
from daemon.providers import DEFAULT_PROFILE
from tests.integration.test_service_check import _services


def test_the_hint_names_the_port() -> None:
    services = _services("http://127.0.0.1:9/v1")  # the discard port: nothing listens
    try:
        with capture_logs() as captured:
            assert check_services(services)[DEFAULT_PROFILE] is False
    finally:
        services.close()
    (failed,) = [e for e in captured if e["event"] == "service_check_failed"]
    assert "(127.0.0.1, port 9)" in failed["hint"]
