"""Where the API key comes from, in order: a systemd credential, a key file, the environment.

The key is never a setting and never stored: the client asks ``KeySource.read`` before every
request, so a corrected key file takes effect without a restart.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import CredentialError
from daemon.providers import ENTRA_EXTRA, ENTRA_MODULE, OPENAI_KEYS, KeyLookup, Profile
from daemon.redaction import remember_secret

CREDENTIAL_NAME = "openai-api-key"
WEBHOOK_CREDENTIAL_NAME = "openai-webhook-secret"
WEBHOOK_KEYS = KeyLookup(
    credential=WEBHOOK_CREDENTIAL_NAME, file_env="OPENAI_WEBHOOK_SECRET_FILE", env="OPENAI_WEBHOOK_SECRET"
)
WEB_TOKEN_CREDENTIAL_NAME = "batchd-web-token"  # noqa: S105 - the name of a credential file, not a secret
WEB_TOKEN_KEYS = KeyLookup(
    credential=WEB_TOKEN_CREDENTIAL_NAME, file_env="BATCHD_WEB_TOKEN_FILE", env="BATCHD_WEB_TOKEN"
)
NOTIFY_CREDENTIAL_NAME = "batchd-notify-secret"  # signs the on_job_done URL's deliveries
NOTIFY_KEYS = KeyLookup(
    credential=NOTIFY_CREDENTIAL_NAME, file_env="BATCHD_NOTIFY_SECRET_FILE", env="BATCHD_NOTIFY_SECRET"
)
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
EMULATOR_KEY = "emulator-key"  # a placeholder the emulator accepts; it unlocks nothing real


@dataclass(frozen=True, slots=True)
class KeySource:
    """Reads the key from a file on every call, or holds one from the environment."""

    description: str
    file: Path | None = None
    # repr=False keeps the key out of every log line and traceback that prints this object.
    value: str | None = None
    what: str = "API key"  # named in error messages: the same reader serves the webhook secret
    fetch: Callable[[], str] | None = None  # a token provider (Microsoft Entra ID), asked on every read

    def __repr__(self) -> str:
        return f"KeySource({self.description})"

    def read(self) -> str:
        """The secret, remembered for redaction each time (a key file may be changed at any time)."""
        key = self._read()
        remember_secret(key)
        return key

    def _read(self) -> str:
        if self.fetch is not None:
            return self.fetch()
        if self.file is None:
            return self.value or ""
        try:
            key = self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CredentialError(f"cannot read the {self.what} from {self.description}: {exc.strerror}") from None
        if not key:
            raise CredentialError(f"the {self.what} file ({self.description}) is empty")
        return key


def find_key_source(environ: Mapping[str, str] | None = None) -> KeySource:
    """Return the first configured OpenAI key source, or raise CredentialError saying how to set one."""
    source = _found(OPENAI_KEYS, os.environ if environ is None else environ, "API key")
    if source is None:
        raise CredentialError(
            "no OpenAI API key: set OPENAI_API_KEY, or OPENAI_API_KEY_FILE to a file holding the key, "
            f"or a systemd credential named {CREDENTIAL_NAME}; "
            "to try batchd without a key, run `batchd run --emulator`"
        )
    return source


def find_profile_key(profile: Profile, environ: Mapping[str, str] | None = None) -> KeySource:
    """The key (or Entra ID token) source of a provider profile, looked up where the profile says."""
    if profile.auth == "entra":
        return KeySource("Microsoft Entra ID token", fetch=entra_token_provider(), what="Entra ID token")
    if profile.keys == OPENAI_KEYS:
        return find_key_source(environ)
    source = _found(profile.keys, os.environ if environ is None else environ, "API key")
    if source is None:
        raise CredentialError(
            f"no API key for provider profile {profile.name}: set {profile.keys.described()} "
            f"(named in [providers.{profile.name}] as key_env, key_file_env, key_credential)"
        )
    return source


def _found(lookup: KeyLookup, env: Mapping[str, str], what: str) -> KeySource | None:
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if lookup.credential and cred_dir and (Path(cred_dir) / lookup.credential).is_file():
        path = Path(cred_dir) / lookup.credential
        return _checked(KeySource(f"systemd credential {lookup.credential}", file=path, what=what), lookup)
    variable = env.get(lookup.env, "").strip() if lookup.env else ""
    if lookup.file_env and env.get(lookup.file_env):
        path = Path(env[lookup.file_env])
        if variable and not path.exists():
            # The image always names a key file; `-e OPENAI_API_KEY=...` alone must still work.
            return KeySource(f"{lookup.env} ({lookup.file_env}={path} does not exist)", value=variable, what=what)
        return _checked(KeySource(f"{lookup.file_env}={path}", file=path, what=what), lookup)
    if lookup.env and variable:
        return KeySource(lookup.env, value=variable, what=what)
    return None


def _checked(source: KeySource, lookup: KeyLookup) -> KeySource:
    """Read the key once now: fail at start-up, loudly, rather than on the first upload."""
    try:
        source.read()
    except CredentialError as exc:
        way_out = f"; or give the key in {lookup.env} and set {lookup.file_env}= (empty)" if lookup.env else ""
        raise CredentialError(f"{exc}{_unreadable_hint(source.file)}{way_out}") from None
    return source


def _unreadable_hint(path: Path | None) -> str:
    """A key file that is there but not readable by this user (a container's uid 10001, systemd's user):
    the fix is its owner or mode, which the bare 'Permission denied' does not say."""
    if path is None or not path.exists() or os.access(path, os.R_OK):
        return ""
    return f"; let this user (uid {os.getuid()}) read it, e.g. chown {os.getuid()} {path} && chmod 0400 {path}"


def find_webhook_secret(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The webhook signing secret's source, looked up like the API key; None when none is set."""
    return _found(WEBHOOK_KEYS, os.environ if environ is None else environ, "webhook signing secret")


def find_profile_webhook_secret(profile: Profile, environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The webhook signing secret a profile names (None if it names none: the default's serves it);
    CredentialError if it names one that is not set."""
    if profile.webhook_keys is None:
        return None
    source = _found(profile.webhook_keys, os.environ if environ is None else environ, "webhook signing secret")
    if source is None:
        raise CredentialError(
            f"no webhook signing secret for provider profile {profile.name}: set {profile.webhook_keys.described()} "
            f"(named in [providers.{profile.name}] as webhook_secret_env, webhook_secret_file_env or "
            "webhook_secret_credential), or remove those keys to use the default profile's secret"
        )
    return source


def find_web_token(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The web page's operator token (its buttons act only with it); None: the page has no buttons."""
    return _found(WEB_TOKEN_KEYS, os.environ if environ is None else environ, "web token")


def find_notify_secret(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The on_job_done URL's signing secret's source, looked up like the API key; None when none is set."""
    return _found(NOTIFY_KEYS, os.environ if environ is None else environ, "notification signing secret")


def entra_token_provider(credential: Any = None) -> Callable[[], str]:
    """Microsoft Entra ID tokens for Azure OpenAI, refreshed by azure-identity before they expire.
    ``credential``: any object with azure-identity's ``get_token``; None: DefaultAzureCredential
    (environment, managed identity, Azure CLI login, ...)."""
    try:
        identity: Any = importlib.import_module(ENTRA_MODULE)
    except ImportError:
        raise CredentialError(
            f"auth = entra needs the azure-identity package, which is not installed: pip install '{ENTRA_EXTRA}' "
            "(or use auth = api-key with the resource's key)"
        ) from None
    chosen = identity.DefaultAzureCredential() if credential is None else credential
    provider: Callable[[], str] = identity.get_bearer_token_provider(chosen, ENTRA_SCOPE)
    return provider


def emulator_key_source() -> KeySource:
    return KeySource("emulator placeholder key", value=EMULATOR_KEY)
