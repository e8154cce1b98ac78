"""Whether a command's --root is a folder `batchd run` has used, before a command acts on it.

A new user runs `batchd cancel NAME` or `batchd retry NAME` from wherever the shell is, and the
default root is the current folder: without this check the command went looking for (or tried to
create) a state database there and failed with a traceback or "no input called NAME".
"""

from __future__ import annotations

import os

from daemon.config import Settings
from daemon.display import printable
from daemon.errors import FolderError


def root_hint(settings: Settings) -> str:
    """The way out when ``settings.root`` is not the daemon's root."""
    return (
        f"give the root the daemon runs on with --root DIR (the folder given to `batchd run`), "
        f"or run the command inside it; {printable(str(settings.root))} is not one"
    )


def require_root(settings: Settings) -> None:
    """Raise FolderError (exit 2) unless ``settings.root`` holds one of batchd's folders (state/, failed/,
    pending_upload/: a root laid out by hand for `batchd retry` has no state yet). Only their presence is
    looked at: under systemd an operator may not read state/ (owner-only) yet still acts on the right root."""
    if not any(os.path.lexists(folder) for folder in (settings.state, settings.failed, settings.pending)):
        missing = printable(str(settings.state))
        raise FolderError(f"no batchd root here: neither {missing} nor failed/ exists; {root_hint(settings)}")
