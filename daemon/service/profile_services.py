"""One connected ``BatchService`` per provider profile, and the one a job's steps must use.

A job records the profile it was routed to (the ``pending_upload/`` subfolder it came from); every
call about it (upload, create, poll, download, cancel, delete) goes to that profile's service. A job
whose profile is no longer configured is held, never failed: its batches may hold paid results,
and putting the ``[providers.NAME]`` table back lets it go on.
"""

from __future__ import annotations

from collections.abc import Mapping

from daemon.errors import AccountError, CredentialError
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE, Profile
from daemon.service.anthropic_service import AnthropicService
from daemon.service.batch_service import BatchService
from daemon.service.credentials import KeySource, find_profile_key
from daemon.service.openai_service import OpenAIService
from daemon.state.states import OPEN_JOB_STATES
from daemon.state.store import Store

log = get_logger(__name__)


class ProfileServices:
    def __init__(self, services: Mapping[str, BatchService], emulators: Mapping[str, str] | None = None) -> None:
        self._services = dict(services)
        # Profile -> the built-in emulator's URL it talks to (`run --emulator`), not its configured one.
        self.emulators = dict(emulators or {})

    @property
    def default(self) -> BatchService:
        return self.of(DEFAULT_PROFILE)

    def names(self) -> list[str]:
        return sorted(self._services)

    def of(self, profile: str) -> BatchService:
        """The service of ``profile``; AccountError (a hold, not a failure) if it is not configured."""
        service = self._services.get(profile)
        if service is None:
            raise AccountError(
                f"provider profile {profile!r} is not configured; add its [providers.{profile}] table "
                "back to the config and restart (the job's files and batches are kept)"
            )
        return service

    def close(self) -> None:
        for service in {id(s): s for s in self._services.values()}.values():  # one service may serve several
            service.close()


def connect_jobs_profiles(profiles: Mapping[str, Profile], wanted: set[str], timeout: float) -> ProfileServices:
    """The services of the ``wanted`` profiles that are configured (for a command about some jobs)."""
    return connect_profiles({name: p for name, p in profiles.items() if name in wanted}, timeout)


def connect_profiles(profiles: Mapping[str, Profile], timeout: float) -> ProfileServices:
    """A service for every configured profile, each with its key looked up now: a profile whose key
    is missing stops the start with a CredentialError naming it, not a job hours later."""
    services: dict[str, BatchService] = {}
    try:
        for name, profile in sorted(profiles.items()):
            services[name] = connect_service(profile, timeout)
    except Exception:
        for service in services.values():
            service.close()
        raise
    return ProfileServices(services)


def connect_each_profile(
    profiles: Mapping[str, Profile], timeout: float
) -> tuple[ProfileServices, dict[str, Exception]]:
    """A service for every profile whose key is found, and the error of each whose key is not (for
    `batchd recover`, which goes on with the profiles it can reach)."""
    services: dict[str, BatchService] = {}
    missing: dict[str, Exception] = {}
    for name, profile in sorted(profiles.items()):
        try:
            services[name] = connect_service(profile, timeout)
        except CredentialError as exc:
            missing[name] = exc
    return ProfileServices(services), missing


def connect_service(profile: Profile, timeout: float) -> BatchService:
    """The service of one profile, its key looked up where the profile says."""
    return service_for(profile, find_profile_key(profile), timeout)


def service_for(profile: Profile, key: KeySource, timeout: float) -> BatchService:
    """The service of one profile with ``key``, spoken to as its kind says: Anthropic's Message
    Batches, or the OpenAI Batch API (OpenAI, Azure, compatible services)."""
    if profile.kind == "anthropic":
        return AnthropicService.for_profile(profile, key, timeout)
    return OpenAIService.for_profile(profile, key, timeout)


def profile_services(remote: BatchService | ProfileServices) -> ProfileServices:
    """``remote`` as profile services: a single service serves the default profile alone."""
    return remote if isinstance(remote, ProfileServices) else ProfileServices({DEFAULT_PROFILE: remote})


def report_unconfigured(store: Store, services: ProfileServices) -> list[str]:
    """Say at start which open jobs' profiles are no longer configured (their jobs are held); their names."""
    open_jobs = [j for j in store.jobs(OPEN_JOB_STATES) if j.profile not in services.names()]
    missing = sorted({j.profile for j in open_jobs})
    for profile in missing:
        log.error(
            "profile_not_configured",
            profile=profile,
            open_jobs=sum(1 for j in open_jobs if j.profile == profile),
            hint=f"put the [providers.{profile}] table back in the config and restart; the jobs are held, not failed",
        )
    return missing
