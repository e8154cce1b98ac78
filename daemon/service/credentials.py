"""Where the API key comes from, in order: a systemd credential, a key file, the environment.

The key is never a setting and never stored: the client asks ``KeySource.read`` before every
request, so a corrected key file takes effect without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import CredentialError
from daemon.redaction import remember_secret

CREDENTIAL_NAME = "openai-api-key"
WEBHOOK_CREDENTIAL_NAME = "openai-webhook-secret"
EMULATOR_KEY = "emulator-key"  # a placeholder the emulator accepts; it unlocks nothing real


@dataclass(frozen=True, slots=True)
class KeySource:
    """Reads the key from a file on every call, or holds one from the environment."""

    description: str
    file: Path | None = None
    # repr=False keeps the key out of every log line and traceback that prints this object.
    value: str | None = None
    what: str = "API key"  # named in error messages: the same reader serves the webhook secret

    def __repr__(self) -> str:
        return f"KeySource({self.description})"

    def read(self) -> str:
        """The secret, remembered for redaction each time (a key file may be changed at any time)."""
        key = self._read()
        remember_secret(key)
        return key

    def _read(self) -> str:
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
    """Return the first configured key source, or raise CredentialError saying how to set one."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
        path = Path(cred_dir) / CREDENTIAL_NAME
        return _checked(KeySource(f"systemd credential {CREDENTIAL_NAME}", file=path))
    if env.get("OPENAI_API_KEY_FILE"):
        path = Path(env["OPENAI_API_KEY_FILE"])
        return _checked(KeySource(f"OPENAI_API_KEY_FILE={path}", file=path))
    if env.get("OPENAI_API_KEY", "").strip():
        return KeySource("OPENAI_API_KEY", value=env["OPENAI_API_KEY"].strip())
    raise CredentialError(
        "no OpenAI API key: set OPENAI_API_KEY, or OPENAI_API_KEY_FILE to a file holding the key, "
        f"or a systemd credential named {CREDENTIAL_NAME}; "
        "to try batchd without a key, run `batchd run --emulator`"
    )


def _checked(source: KeySource) -> KeySource:
    source.read()  # fail at start-up, loudly, rather than on the first upload
    return source


def find_webhook_secret(environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The webhook signing secret's source, looked up like the API key; None when none is set."""
    env = os.environ if environ is None else environ
    what = "webhook signing secret"
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / WEBHOOK_CREDENTIAL_NAME).is_file():
        path = Path(cred_dir) / WEBHOOK_CREDENTIAL_NAME
        return _checked(KeySource(f"systemd credential {WEBHOOK_CREDENTIAL_NAME}", file=path, what=what))
    if env.get("OPENAI_WEBHOOK_SECRET_FILE"):
        path = Path(env["OPENAI_WEBHOOK_SECRET_FILE"])
        return _checked(KeySource(f"OPENAI_WEBHOOK_SECRET_FILE={path}", file=path, what=what))
    if env.get("OPENAI_WEBHOOK_SECRET", "").strip():
        return KeySource("OPENAI_WEBHOOK_SECRET", value=env["OPENAI_WEBHOOK_SECRET"].strip(), what=what)
    return None


def emulator_key_source() -> KeySource:
    return KeySource("emulator placeholder key", value=EMULATOR_KEY)
