"""Identifiers: random ones for stored objects, hash-derived ones for anything that must be reproducible."""

from __future__ import annotations

import hashlib
import uuid


def new_id(prefix: str) -> str:
    """A fresh id such as `file-` or `batch_` followed by 24 hex characters.

    Random rather than seeded: a daemon that keeps state across emulator restarts must never see
    a new batch reuse the id of one it already knows.
    """
    return prefix + uuid.uuid4().hex[:24]


def stable_hex(*parts: object, length: int = 32) -> str:
    """Hex digest of the parts; equal inputs give equal output on every run and platform."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=32).hexdigest()[:length]


def stable_fraction(*parts: object) -> float:
    """A reproducible number in [0, 1) derived from the parts (used like a seeded coin toss)."""
    return int(stable_hex(*parts, length=13), 16) / float(16**13)
