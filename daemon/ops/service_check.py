"""At start, one cheap authenticated call per provider profile: is the service there, and does it take the key?

A wrong key or no route to the service would otherwise show only when the first file is dropped,
maybe hours later. The check runs on its own thread and only logs (``service_checked``, or
``service_check_failed`` naming the host or the refused key and what to change): intake, polling
and everything else start at once, and an account problem holds the work as it always does.
"""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from urllib.parse import urlparse

from daemon.errors import AccountError, DaemonError, PermanentError, TransientError
from daemon.logs import get_logger
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import ProfileServices

log = get_logger(__name__)
DEFAULT_API = "https://api.openai.com/v1"
PROBE_BATCH_ID = "batch_batchd_start_check"  # retrieved where batches cannot be listed: a 404 is an answer


def start_service_check(services: ProfileServices) -> threading.Thread:
    """Check every profile's service on a thread of its own; the caller joins it (briefly) at exit."""
    thread = threading.Thread(target=check_services, args=(services,), name="batchd-service-check", daemon=True)
    thread.start()
    return thread


def check_services(services: ProfileServices) -> dict[str, bool]:
    """Whether each profile's service answered with the key accepted (one service serving several: once)."""
    checked: dict[int, bool] = {}
    results = {}
    for name in services.names():
        service = services.of(name)
        if id(service) not in checked:
            checked[id(service)] = check_service(name, service)
        results[name] = checked[id(service)]
    return results


def check_service(profile: str, service: BatchService) -> bool:
    api = service.profile.base_url or DEFAULT_API
    try:
        _call(service)
    except DaemonError as exc:
        problem, hint = _explained(exc, api, profile, service)
        log.error("service_check_failed", profile=profile, api=api, problem=problem, error=str(exc), hint=hint)
        return False
    log.info("service_checked", profile=profile, api=api)
    return True


def _explained(exc: DaemonError, api: str, profile: str, service: BatchService) -> tuple[str, str]:
    """What went wrong, in a user's words, and what to change."""
    if isinstance(exc, AccountError):
        places = service.profile.keys.described() or "its key_env, key_file_env or key_credential"
        return "the key was refused", f"check the key of profile {profile} ({places}); a key file needs no restart"
    if isinstance(exc, TransientError):
        parsed = urlparse(api)
        host = parsed.hostname or api
        where = f"{host}, port {parsed.port}" if parsed.port else host  # a local gateway's wrong port, too
        hint = f"check the host and port in base_url, the network, a proxy or firewall ({where})"
        return f"cannot reach {host}", hint
    return "unexpected answer", "check base_url: it should end in the API's version path, e.g. /v1"


def _call(service: BatchService) -> None:
    if service.profile.supports_list:
        service.batches_since(time.time())  # the first page only: one GET /batches
        return
    with suppress(PermanentError):  # a 404 (or a 400 for the made-up id): it answered, the key accepted
        service.retrieve(PROBE_BATCH_ID)
