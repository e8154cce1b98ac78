"""`batchd run --emulator` with provider profiles: each profile talks to a built-in emulator of its kind.

A profile of kind ``openai`` uses the emulator the run already started; ``azure`` and
``openai_compatible`` profiles share one more emulator of the flavour that imitates them (Azure's
``api-key`` header, v1 path and deployment names; a compatible service's string bodies and missing
metadata), each on its own loopback port. So `make demo` shows files routed to two services at once,
with no key. The azure emulator serves the deployments the profiles' model maps name (or its default
one). An ``entra`` profile sends the emulator key as ``api-key`` instead: no token is needed here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path

from daemon.config import Settings
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.service.batch_service import BatchService
from daemon.service.credentials import emulator_key_source
from daemon.service.profile_services import ProfileServices, service_for

log = get_logger(__name__)
# A profile kind -> the emulator flavour imitating it; a kind not listed: the flavour of its own name.
FLAVOURS: Mapping[str, str] = {"openai": "openai", "azure": "azure", "openai_compatible": "compatible"}
# As the demo's own emulator: long enough to watch a batch move through its statuses.
EMULATOR_DIR = ".emulator"  # under the root: the run's emulator keeps its state here, the others in FLAVOUR/
DEMO_TIMINGS = {"validating_seconds": 2.0, "in_progress_seconds": 5.0, "finalizing_seconds": 1.0}


def emulated_services(settings: Settings, stack: ExitStack) -> ProfileServices:
    """A service per configured profile, each on an emulator of its kind (started here, stopped by
    ``stack``); ``settings.base_url`` is the run's own (openai) emulator."""
    profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
    urls = {"openai": settings.base_url or ""}
    for flavour in sorted({_flavour(p) for p in profiles.values()} - {"openai"}):
        urls[flavour] = _started(
            flavour, _deployments(profiles.values()), stack, settings.root / EMULATOR_DIR / flavour
        )
    services = {name: _service(profile, urls[_flavour(profile)], settings) for name, profile in profiles.items()}
    return ProfileServices(services, {name: urls[_flavour(profile)] for name, profile in profiles.items()})


def _flavour(profile: Profile) -> str:
    return FLAVOURS.get(profile.kind, profile.kind)


def _started(flavour: str, deployments: tuple[str, ...], stack: ExitStack, kept: Path) -> str:
    from daemon.emulator import EmulatorServer, EmulatorSettings  # noqa: PLC0415 - emulator mode only

    # Kept under the root like the run's own emulator, so a demo stopped with Ctrl-C finishes these
    # batches too (an anthropic profile's Message Batches as well).
    extra = {"deployments": deployments} if deployments else {}
    keep = {"data_dir": kept, "keep_state": True}
    chosen = EmulatorSettings(**DEMO_TIMINGS, flavour=flavour, **extra, **keep)  # type: ignore[arg-type]
    server = EmulatorServer(chosen)
    server.start()
    stack.callback(server.stop)
    log.warning("emulator_mode", api=server.base_url, flavour=flavour, message="profiles of this kind use it")
    return server.base_url


def _deployments(profiles: Iterable[Profile]) -> tuple[str, ...]:
    """The deployment names the azure profiles' model maps send (the emulator refuses others)."""
    found = {name for p in profiles if p.kind == "azure" for _, name in p.models}
    return tuple(sorted(found))


def _service(profile: Profile, url: str, settings: Settings) -> BatchService:
    auth = "api-key" if profile.auth == "entra" else profile.auth
    emulated = dataclasses.replace(profile, base_url=url, api_version=None, auth=auth)
    return service_for(emulated, emulator_key_source(), settings.request_timeout)
