"""The optional receiver for OpenAI's batch webhooks: a signed delivery makes the poller check
that batch at once instead of at its next poll. Polling stays the fallback for lost deliveries.

Off unless ``webhook_port`` is set. It speaks plain HTTP, on 127.0.0.1 by default: OpenAI needs a
public HTTPS URL, so a reverse proxy terminates TLS and forwards to it.

Every delivery is checked by the SDK (``client.webhooks.unwrap``: the Standard Webhooks HMAC over
id, timestamp and raw body, with timestamps more than 5 minutes off refused); bad, forged or stale
ones get 400. A webhook-id seen before gets 200 and no action. Seen ids are kept in memory, bounded
in count and age, not in the state database: the SDK refuses any delivery signed more than
5 minutes ago, so a captured delivery cannot be replayed later than that, and acting twice on one
costs only an extra status check. That is not worth a database write per delivery, nor letting
senders grow the database.

A delivery is verified with the signing secret of the profile whose batch it names, where that
profile names one (``webhook_secret_env`` etc.; see webhook_secrets.py), else with the default one,
which need not be set when every profile whose service sends webhooks names its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from daemon.config import Settings
from daemon.errors import CredentialError
from daemon.http_endpoints import port_error
from daemon.http_listener import Handler, HttpListener, Limits
from daemon.http_messages import Request, Response
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.service.batch_info import WebhookEvent
from daemon.service.batch_service import BatchService
from daemon.service.credentials import (
    WEBHOOK_CREDENTIAL_NAME,
    KeySource,
    find_profile_webhook_secret,
    find_webhook_secret,
)
from daemon.service.webhook_secrets import ProfileSecrets, batch_profiles, relying_on_default
from daemon.state.store import Store

log = get_logger(__name__)
BATCH_EVENTS = frozenset({"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"})
MAX_BODY = 1 << 20  # a batch event is a few hundred bytes
REPLAY_WINDOW = 3600.0  # well past the SDK's 300 s signature tolerance
REPLAY_MEMORY = 10_000  # ids remembered at most

# Given a batch id, asks for it to be checked now: "queued", "unknown" or "finished".
RefreshBatch = Callable[[str], str]


class SeenIds:
    """Webhook ids already acted on, oldest forgotten first (by count, then by age)."""

    def __init__(self, window: float = REPLAY_WINDOW, limit: int = REPLAY_MEMORY) -> None:
        self._window = window
        self._limit = limit
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, webhook_id: str, now: float) -> bool:
        """Remember ``webhook_id``; False when it was seen before."""
        with self._lock:
            while self._ids and (len(self._ids) >= self._limit or next(iter(self._ids.values())) < now - self._window):
                self._ids.popitem(last=False)
            if webhook_id in self._ids:
                return False
            self._ids[webhook_id] = now
            return True

    def discard(self, webhook_id: str) -> None:
        with self._lock:
            self._ids.pop(webhook_id, None)


class WebhookReceiver:
    """What to do with one delivery, apart from HTTP: verify, drop replays, ask for a refresh."""

    def __init__(
        self,
        service: BatchService,
        secret: KeySource | None,
        refresh: RefreshBatch,
        profiles: ProfileSecrets | None = None,
    ) -> None:
        self.service = service
        self.secret = secret  # the default one (None: every profile that gets webhooks names its own)
        self.refresh = refresh
        self.profiles = profiles  # the profiles with a secret of their own, and whose batch is whose
        self.seen = SeenIds()

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """Return the HTTP status and a one-word outcome for the sender."""
        profile = DEFAULT_PROFILE
        secrets: tuple[KeySource, ...] = (self.secret,) if self.secret is not None else ()
        if self.profiles is not None:
            profile, secrets = self.profiles.choose(body, self.secret)
        try:
            event = self._verified(body, headers, secrets)
        except CredentialError as exc:
            log.error("webhook_secret_unreadable", error=str(exc))
            return 500, "unavailable"  # not the sender's fault: let it deliver again later
        except ValueError as exc:  # a bad or stale signature, a missing header, a body that is not JSON
            log.warning("webhook_rejected", reason=str(exc), webhook_id=headers.get("webhook-id"), profile=profile)
            return 400, "rejected"
        webhook_id = headers["webhook-id"]  # unwrap checked it is there
        if not self.seen.add(webhook_id, time.time()):
            log.info("webhook_replayed", webhook_id=webhook_id)
            return 200, "duplicate"
        try:
            return 200, self._act(webhook_id, event)
        except Exception:
            self.seen.discard(webhook_id)  # not acted on: a redelivery must not look like a replay
            log.exception("webhook_failed", webhook_id=webhook_id)
            return 500, "failed"

    def _verified(self, body: bytes, headers: dict[str, str], secrets: tuple[KeySource, ...]) -> WebhookEvent:
        """The event, verified with the first of ``secrets`` that accepts it; the last refusal if none."""
        refusal = ValueError("no signing secret can verify this delivery")
        for secret in secrets:
            try:
                return self.service.unwrap_webhook(body, headers, secret.read())
            except ValueError as exc:
                refusal = exc
        raise refusal

    def _act(self, webhook_id: str, event: WebhookEvent) -> str:
        kind, batch_id = event.type, event.batch_id
        if kind not in BATCH_EVENTS or batch_id is None:
            log.info("webhook_ignored", webhook_id=webhook_id, type=kind)
            return "ignored"
        outcome = self.refresh(batch_id)
        if outcome == "unknown":
            log.warning("webhook_batch_unknown", webhook_id=webhook_id, type=kind, batch_id=batch_id)
        else:
            log.info("webhook_received", webhook_id=webhook_id, type=kind, batch_id=batch_id, outcome=outcome)
        return outcome


def webhook_handler(receiver: WebhookReceiver) -> Handler:
    """The HTTP side of the receiver: POSTs of a sane size only."""

    def handle(request: Request) -> Response:
        if request.method != "POST":
            return _reply(405, "POST webhook deliveries here")
        if not request.headers.get("Content-Length", "").isdigit():
            return _reply(411, "length required")
        headers = {name.lower(): value for name, value in request.headers.items()}
        return _reply(*receiver.handle(request.body, headers))

    return handle


def _reply(status: int, outcome: str) -> Response:
    payload = json.dumps({"status": outcome}).encode()
    return Response(status, payload, [("Content-Type", "application/json")])


class WebhookServer:
    """The receiver's HTTP endpoint, on the bounded listener."""

    def __init__(self, settings: Settings, receiver: WebhookReceiver) -> None:
        self.settings = settings
        self.receiver = receiver
        self._listener: HttpListener | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system picked for port 0)."""
        assert self._listener is not None
        return self._listener.port

    def start(self) -> None:
        address, port = self.settings.webhook_address, self.settings.webhook_port or 0
        limits = Limits(max_body_bytes=MAX_BODY)
        listener = HttpListener("webhooks", address, port, webhook_handler(self.receiver), limits)
        try:
            listener.start()
        except OSError as exc:
            raise port_error("webhook_port", port, address, exc) from None
        self._listener = listener
        secret = self.receiver.secret
        secret_from = secret.description if secret is not None else "each profile's own"
        log.info("webhooks_serving", address=address, port=self.port, secret_from=secret_from)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._listener = None


def webhook_server(
    settings: Settings, service: BatchService, refresh: RefreshBatch, store: Store | None = None
) -> WebhookServer | None:
    """The receiver when ``webhook_port`` is set (it then needs a signing secret for every profile
    whose service sends webhooks), else None. Each delivery is verified with the secret of its
    batch's profile if it has one (its batch's profile is read from the ``store``)."""
    if settings.webhook_port is None:
        return None
    profiles = _profile_secrets(settings, store)
    secret = find_webhook_secret()
    if secret is None:
        _require_default_secret(settings, profiles)
    else:
        check_secret(secret)
    return WebhookServer(settings, WebhookReceiver(service, secret, refresh, profiles))


def _require_default_secret(settings: Settings, profiles: ProfileSecrets | None) -> None:
    """Refuse to start without the default secret while a profile relies on it (or none has one)."""
    relying = relying_on_default(settings.providers)
    if not relying and profiles is not None:
        return
    named = ", ".join(f"[providers.{name}]" for name in relying) or "each profile"
    raise CredentialError(
        "webhook_port is set but there is no webhook signing secret: set OPENAI_WEBHOOK_SECRET, "
        f"or OPENAI_WEBHOOK_SECRET_FILE to a file holding it, or a systemd credential named "
        f"{WEBHOOK_CREDENTIAL_NAME}; or give {named} a secret of its own (webhook_secret_env, "
        "webhook_secret_file_env or webhook_secret_credential); or unset webhook_port"
    )


def _profile_secrets(settings: Settings, store: Store | None) -> ProfileSecrets | None:
    """The secrets profiles name for themselves (each checked at start), or None if none does."""
    found = {name: find_profile_webhook_secret(profile) for name, profile in settings.providers.items()}
    own = {name: secret for name, secret in found.items() if secret is not None}
    for secret in own.values():
        check_secret(secret)
    if not own:
        return None
    return ProfileSecrets(own, batch_profiles(store))


def check_secret(secret: KeySource) -> None:
    """Refuse, at start, a ``whsec_`` secret that is not base64 (every delivery would fail)."""
    value = secret.read()
    if value.startswith("whsec_"):
        try:
            base64.b64decode(value[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise CredentialError(
                f"the webhook signing secret from {secret.description} starts with whsec_ but the rest "
                "is not base64; copy it again from the OpenAI dashboard"
            ) from None
