"""``batchd run``: set everything up in order, run the engine, shut down cleanly."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack

from daemon.clock import WALL_CLOCK
from daemon.config import Settings
from daemon.engine.emulated_profiles import emulated_services
from daemon.engine.main_loop import Engine
from daemon.http_endpoints import Endpoint
from daemon.logs import get_logger
from daemon.ops.command_desk import HandlerFactory
from daemon.ops.lost_state_guard import refuse_lost_state
from daemon.ops.sd_notify import Notifier
from daemon.ops.signals import StopFlags, captured_signals
from daemon.providers import DEFAULT_PROFILE, Profile, openai_default_profile
from daemon.service.credentials import KeySource, emulator_key_source, find_profile_key
from daemon.service.profile_services import ProfileServices, connect_profiles, report_unconfigured
from daemon.state import folders
from daemon.state.store import Store

log = get_logger(__name__)
# Endpoints built from the engine by a floor above it (the web page, which shares `batchd status`'s views).
MoreEndpoints = Callable[[Engine], list[Endpoint]]


def run_daemon(
    settings: Settings,
    *,
    emulator: bool,
    commands: HandlerFactory | None = None,
    more_endpoints: MoreEndpoints | None = None,
) -> int:
    """Run until stopped; ``commands``: how the daemon carries out the operators' commands (from the cli)."""
    with ExitStack() as stack:
        if emulator:
            settings = stack.enter_context(_emulated(settings))
            profile, key = openai_default_profile(settings.base_url), emulator_key_source()
            # Each configured profile on an emulator of its kind, so routing to folders can be tried out.
            services = emulated_services(settings, stack)
        else:
            profile, key = settings.default_profile, find_profile_key(settings.default_profile)
            profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
            services = connect_profiles(profiles, settings.request_timeout)
        stack.callback(services.close)
        return _serve(settings, profile, key, services, stack, commands, more_endpoints)
    return 0  # pragma: no cover - ExitStack never swallows here


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
    folders.prepare(settings)
    lock = folders.InstanceLock(settings.state)
    lock.acquire()
    stack.callback(lock.release)
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
        # Demo timings: long enough to watch a batch move through its statuses, short enough to wait for.
        demo = EmulatorSettings(validating_seconds=2.0, in_progress_seconds=5.0, finalizing_seconds=1.0)
        self._server = EmulatorServer(demo)

    def __enter__(self) -> Settings:
        self._server.start()
        log.warning(
            "emulator_mode",
            api=self._server.base_url,
            message="EMULATOR MODE: requests go to a local fake BatchInfo API; answers are not real",
        )
        return dataclasses.replace(self._settings, base_url=self._server.base_url)

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
