"""The main loop's sleep ends at once for a ring from any thread, for the stop flag and for a signal
whose handler only sets that flag; otherwise it lasts its whole timeout."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.doorbell import Doorbell, RingingEvent
from daemon.emulator import EmulatorServer
from daemon.engine.main_loop import Engine
from daemon.ops.signals import StopFlags, captured_signals
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.state import folders
from daemon.state.store import Store
from tests.support import TEST_KEY, wait_until

LONG = 30.0  # a sleep no test waits out: ending sooner proves the wake-up
PROMPT = 5.0


def _timed_wait(bell: Doorbell, timeout: float) -> tuple[bool, float]:
    start = time.monotonic()
    rung = bell.wait(timeout)
    return rung, time.monotonic() - start


def test_a_ring_from_another_thread_ends_a_long_sleep_and_is_used_up() -> None:
    bell = Doorbell()
    try:
        threading.Thread(target=bell.ring).start()
        rung, took = _timed_wait(bell, LONG)
        assert rung and took < PROMPT
        assert not bell.wait(0)  # the rings were drained: the next sleep is not cut short
    finally:
        bell.close()


def test_without_a_ring_the_sleep_lasts_its_timeout() -> None:
    bell = Doorbell()
    try:
        rung, took = _timed_wait(bell, 0.05)
        assert not rung and took >= 0.04
    finally:
        bell.close()


def test_setting_a_ringing_event_rings_its_bells_until_detached() -> None:
    bell, event = Doorbell(), RingingEvent()
    try:
        event.attach(bell)
        event.set()
        assert event.is_set() and bell.wait(0)
        event.detach(bell)
        event.set()
        assert not bell.wait(0)
    finally:
        bell.close()


def test_sigterm_whose_handler_only_sets_the_stop_flag_ends_the_sleep() -> None:
    flags, bell = StopFlags(), Doorbell()
    flags.stop.attach(bell)
    try:
        with captured_signals(flags), bell.rung_by_signals():
            # From another thread, so the kernel may hand the signal to either: both must wake the sleep.
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM)).start()
            rung, took = _timed_wait(bell, LONG)
        assert rung and took < PROMPT
        assert flags.stop.is_set() and not flags.force.is_set()
    finally:
        bell.close()


def test_the_stop_flag_ends_the_engines_sleep_before_its_next_timer(tmp_path: Path, emulator: EmulatorServer) -> None:
    settings = Settings(
        root=tmp_path, base_url=emulator.base_url, scan_interval=3600, heartbeat_interval=3600, poll_interval=3600
    )
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 10.0)
    flags = StopFlags()
    engine = Engine(settings, store, remote, flags)
    try:
        engine.start()
        loop = threading.Thread(target=engine.run)
        loop.start()
        wait_until(lambda: store.fact("heartbeat"), 10, "the first pass")  # then it sleeps for an hour
        start = time.monotonic()
        flags.stop.set()
        loop.join(LONG)
        assert not loop.is_alive() and time.monotonic() - start < PROMPT
    finally:
        engine.shutdown()
        remote.close()
        store.close()


def test_a_ring_after_close_writes_nowhere() -> None:
    """A step left running at shutdown may ring late: the freed descriptor may name another file by then."""
    bell = Doorbell()
    bell.close()
    read, write = os.pipe()  # likely the descriptors the bell just gave back
    try:
        bell.ring()
        os.set_blocking(read, False)
        with pytest.raises(BlockingIOError):
            os.read(read, 1)
    finally:
        os.close(read)
        os.close(write)
        bell.close()  # twice is fine
