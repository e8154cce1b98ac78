"""Which provider profile `batchd validate` checks a file for: the one named with ``--profile``, else
the one its folder routes to (``pending_upload/NAME/``), else the default. The file is then checked
with that profile's url forms and limits, as the intake would check it."""

from __future__ import annotations

from pathlib import Path

from daemon.config import Settings
from daemon.errors import ConfigError
from daemon.intake.preparer import batch_limits
from daemon.intake.validation import BatchLimits
from daemon.providers import DEFAULT_PROFILE


def chosen_profile(settings: Settings, path: Path, named: str | None) -> str:
    """``named`` if configured (ConfigError naming the profiles if not), else the file's folder's."""
    known = sorted({DEFAULT_PROFILE, *settings.providers})
    if named is not None:
        if named not in known:
            raise ConfigError(f"--profile {named}: no such provider profile; configured: {', '.join(known)}")
        return named
    folder = path.absolute().parent
    if folder.parent.name == settings.pending.name and folder.name in settings.providers:
        return folder.name  # pending_upload/NAME/file: the intake runs it on profile NAME
    return DEFAULT_PROFILE


def profile_limits(settings: Settings, profile: str) -> BatchLimits:
    """The limits and url forms the intake checks an input of ``profile`` against."""
    return batch_limits(settings, profile)
