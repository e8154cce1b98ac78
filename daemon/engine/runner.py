"""``batchd run``: set everything up in order, run the engine, shut down cleanly."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack

from daemon.clock import WALL_CLOCK
from daemon.config import Settings
from daemon.engine.emulated_profiles import EMULATOR_DIR, emulated_services
from daemon.engine.main_loop import Engine
from daemon.errors import AlreadyRunningError, FolderError
from daemon.http_endpoints import Endpoint
from daemon.logs import get_logger
from daemon.ops.command_desk import HandlerFactory
from daemon.ops.lost_state_guard import refuse_lost_state
from daemon.ops.sd_notify import Notifier
from daemon.ops.service_check import start_service_check
from daemon.ops.signals import StopFlags, captured_signals
from daemon.providers import DEFAULT_PROFILE, Profile, openai_default_profile
from daemon.service.credentials import KeySource, emulator_key_source, find_profile_key
from daemon.service.profile_services import ProfileServices, connect_profiles, report_unconfigured
from daemon.state import folders
from daemon.state.store import Store

log = get_logger(__name__)
# Endpoints built from the engine by a floor above it (the web page, which shares `batchd status`'s views).
MoreEndpoints = Callable[[Engine], list[Endpoint]]
LOCK_PATIENCE = 5.0  # seconds a start waits for the root's lock before it says another batchd runs there
LOCK_RETRY = 0.25
CHECK_JOIN = 5.0  # seconds a stop waits for the start-up service check still under way
EMULATOR_LOST_GRACE = 10.0  # seconds of 404s before `run --emulator` ends a batch as lost (see _emulated)


def run_daemon(
    settings: Settings,
    *,
    emulator: bool,
    commands: HandlerFactory | None = None,
    more_endpoints: MoreEndpoints | None = None,
) -> int:
    """Run until stopped; ``commands``: how the daemon carries out the operators' commands (from the cli)."""
    with ExitStack() as stack:
        if not emulator:  # keys first: a missing one starts nothing, not even the folders
            profile, key = settings.default_profile, find_profile_key(settings.default_profile)
            profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
            services = connect_profiles(profiles, settings.request_timeout)
            stack.callback(services.close)
        folders.prepare(settings)
        hold_instance_lock(settings, stack)
        if emulator:  # after the lock: one emulator per root keeps its state under the root
            settings = stack.enter_context(_emulated(settings))
            profile, key = openai_default_profile(settings.base_url), emulator_key_source()
            # Each configured profile on an emulator of its kind, so routing to folders can be tried out.
            services = emulated_services(settings, stack)
            stack.callback(services.close)
        return _serve(settings, profile, key, services, stack, commands, more_endpoints)
    return 0  # pragma: no cover - ExitStack never swallows here


def hold_instance_lock(settings: Settings, stack: ExitStack) -> None:
    """Take the root's lock, waiting a few seconds for a short-lived holder (`batchd abandon`, a
    stopping daemon); still taken after that, another daemon runs on this root: AlreadyRunningError."""
    lock = folders.InstanceLock(settings.state)
    deadline = time.monotonic() + LOCK_PATIENCE
    pause = threading.Event()
    while True:
        try:
            lock.acquire()
            break
        except AlreadyRunningError:
            if time.monotonic() >= deadline:
                raise
            pause.wait(LOCK_RETRY)
    stack.callback(lock.release)


def emulated(settings: Settings) -> _emulated:
    """The built-in emulator, started, and the settings pointed at it (also for `batchd recover --emulator`)."""
    return _emulated(settings)


def _serve(
    settings: Settings,
    profile: Profile,
    key: KeySource,
    services: ProfileServices,
    stack: ExitStack,
    commands: HandlerFactory | None,
    more_endpoints: MoreEndpoints | None,
) -> int:
    refuse_lost_state(settings)
    store = Store(settings.state / folders.DB_NAME)
    stack.callback(store.close)
    report_unconfigured(store, services)
    log.info(
        "daemon_starting",
        root=str(settings.root),
        api=profile.base_url or "https://api.openai.com/v1",
        provider=profile.kind,
        key_from=key.description,
        profiles=services.names(),
    )
    checking = start_service_check(services)
    stack.callback(checking.join, CHECK_JOIN)  # before the services close (a stack unwinds last in, first out)
    flags = stack.enter_context(captured_signals(StopFlags()))
    # The one clock every timing rule reads.
    engine = Engine(settings, store, services, flags, Notifier(), WALL_CLOCK, commands)
    engine.endpoints += more_endpoints(engine) if more_endpoints else []
    try:
        engine.start()
        with engine.bell.rung_by_signals():
            engine.run()
    finally:
        engine.shutdown()
    return engine.exit_code


class _emulated:  # noqa: N801 - used like a function, as a context manager
    """Start the built-in emulator and point the settings at it, loudly."""

    def __init__(self, settings: Settings) -> None:
        from daemon.emulator import EmulatorServer, EmulatorSettings  # noqa: PLC0415 - emulator mode only

        self._settings = settings
        # Owner-only, like state/: it holds copies of the inputs uploaded to it.
        if settings.root.is_dir():
            (settings.root / EMULATOR_DIR).mkdir(mode=0o700, exist_ok=True)
        # Demo timings: long enough to watch a batch move through its statuses, short enough to wait for.
        demo = EmulatorSettings(
            validating_seconds=2.0,
            in_progress_seconds=5.0,
            finalizing_seconds=1.0,
            data_dir=settings.root / EMULATOR_DIR,
            keep_state=True,  # a demo stopped with Ctrl-C finishes its batches when started again
        )
        self._server = EmulatorServer(demo)

    def __enter__(self) -> Settings:
        try:
            self._server.start()
        except ValueError as exc:  # its kept state cannot be read (snapshot.py says which file)
            raise FolderError(f"the built-in emulator cannot start: {exc}") from None
        log.warning(
            "emulator_mode",
            api=self._server.base_url,
            state=str(self._server.data_dir),
            message="EMULATOR MODE: requests go to a local fake Batch API; answers are not real",
        )
        # Its state is kept under the root, so a batch it answers 404 for is gone for good (its state
        # was deleted): the job ends with a report naming `batchd retry` instead of polling for an hour.
        grace = min(self._settings.lost_batch_grace, EMULATOR_LOST_GRACE)
        return dataclasses.replace(self._settings, base_url=self._server.base_url, lost_batch_grace=grace)

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
