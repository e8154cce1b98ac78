"""Secrets are masked wherever text leaves the process: logs, stored errors, messages on a terminal.

Two nets. Patterns catch anything shaped like a key or a token even before it was read (an OpenAI
or Anthropic ``sk-`` key, a ``Bearer`` header, a ``whsec_`` webhook secret). And every secret batchd
itself reads (the API key, the webhook signing secret) is remembered by value, so a key of any
other shape (Azure's 32 hex digits, a proxy's token) is masked too, wherever it shows up.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"
# Shorter values are too likely to occur by chance in ordinary text to be masked by value.
MIN_SECRET_LENGTH = 8
_PATTERN = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|whsec_[A-Za-z0-9+/=_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.~+/=]{6,})")
_secrets: frozenset[str] = frozenset()
_secrets_lock = threading.Lock()


def remember_secret(value: str) -> None:
    """Mask ``value`` from now on; called by whatever reads a secret, each time it reads one."""
    global _secrets  # noqa: PLW0603 - one process-wide set, replaced whole so readers need no lock
    if len(value) < MIN_SECRET_LENGTH or value in _secrets:
        return
    with _secrets_lock:
        _secrets = _secrets | {value}


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _PATTERN.sub(MASK, text)


def redact_value(value: Any) -> Any:
    """``value`` with every string inside it redacted (dicts, lists and tuples are walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value
