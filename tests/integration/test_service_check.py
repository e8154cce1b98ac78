"""The start-up service check: one authenticated call per profile, logged, never in the way of intake."""

from __future__ import annotations

import dataclasses

from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.ops.service_check import check_services
from daemon.providers import DEFAULT_PROFILE, openai_default_profile
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.profile_services import ProfileServices
from tests.support import TEST_KEY


def _services(base_url: str) -> ProfileServices:
    service = OpenAIService.for_profile(openai_default_profile(base_url), KeySource("test", value=TEST_KEY), 5.0)
    return ProfileServices({DEFAULT_PROFILE: service, "second": service})


def test_a_reachable_service_that_takes_the_key_is_checked_once(emulator: EmulatorServer) -> None:
    services = _services(emulator.base_url)
    try:
        with capture_logs() as captured:
            assert check_services(services) == {DEFAULT_PROFILE: True, "second": True}
    finally:
        services.close()
    checked = [e for e in captured if e["event"] == "service_checked"]
    assert len(checked) == 1, "one service serving two profiles is asked once"
    assert emulator.calls.to_json()  # the call reached the service


def test_a_refused_key_is_named_with_where_the_key_comes_from(emulator: EmulatorServer) -> None:
    emulator.faults.add_rule(action="status", method="GET", path_prefix="/v1/batches", status=401, count=1)
    services = _services(emulator.base_url)
    try:
        with capture_logs() as captured:
            assert check_services(services)[DEFAULT_PROFILE] is False
    finally:
        services.close()
    (failed,) = [e for e in captured if e["event"] == "service_check_failed"]
    assert failed["problem"] == "the key was refused"
    assert "OPENAI_API_KEY" in failed["hint"]
    assert TEST_KEY not in str(failed)


def test_an_unreachable_host_is_named() -> None:
    services = _services("http://127.0.0.1:9/v1")  # the discard port: nothing listens
    try:
        with capture_logs() as captured:
            assert check_services(services)[DEFAULT_PROFILE] is False
    finally:
        services.close()
    (failed,) = [e for e in captured if e["event"] == "service_check_failed"]
    assert failed["problem"] == "cannot reach 127.0.0.1"
    assert "base_url" in failed["hint"]
    # A local gateway or the emulator on a wrong port: the host alone sends the user looking at the host.
    assert "(127.0.0.1, port 9)" in failed["hint"]


def test_a_service_that_cannot_list_is_asked_for_one_batch(emulator: EmulatorServer) -> None:
    profile = dataclasses.replace(openai_default_profile(emulator.base_url), supports_list=False)
    service = OpenAIService.for_profile(profile, KeySource("test", value=TEST_KEY), 5.0)
    try:
        with capture_logs() as captured:
            assert check_services(ProfileServices({DEFAULT_PROFILE: service})) == {DEFAULT_PROFILE: True}
    finally:
        service.close()
    assert [e["event"] for e in captured] == ["service_checked"]  # its 404 for a made-up id is an answer
    assert emulator.calls.count("GET", "/v1/batches") == 0
