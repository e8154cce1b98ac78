"""``results_group`` / ``results_mode``: results the people who drop files can read.

Results are written owner-only (0700 folders, 0600 files): inputs and answers may be confidential.
In a shared set-up (one service user, producers in its group) that locks the producers out of
their own results, so the two settings give batch_results/ and failed/, and each job's results
folder once its results are complete, a group and a mode. Files get the folder mode without the
execute bits (0750 -> 0640). Both are checked at start: the group must exist, and the daemon's user
must be allowed to give files to it (be root or a member).
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ConfigError

OWNER_ONLY_DIR = 0o700
SHARED_DIR = 0o750  # results_mode when only results_group is set: the group may read, not write


@dataclass(frozen=True, slots=True)
class ResultsSharing:
    gid: int | None = None  # None: files keep the group they were created with
    dir_mode: int | None = None  # None: folders and files keep the modes they were created with

    @property
    def active(self) -> bool:
        return self.gid is not None or self.dir_mode is not None

    @property
    def file_mode(self) -> int | None:
        return None if self.dir_mode is None else self.dir_mode & 0o666

    def share(self, path: Path) -> None:
        """Give one folder or file the group and mode (a symlink is left alone)."""
        if not self.active or path.is_symlink():
            return
        mode = self.dir_mode if path.is_dir() else self.file_mode
        if self.gid is not None:
            os.chown(path, -1, self.gid)
        if mode is not None:
            os.chmod(path, mode)

    def share_tree(self, folder: Path) -> None:
        """The folder and everything in it: a job's results, once complete."""
        if not self.active:
            return
        self.share(folder)
        for parent, folders, files in os.walk(folder):
            for name in (*folders, *files):
                self.share(Path(parent) / name)


def results_sharing(group: str | None, mode: str | None) -> ResultsSharing:
    """The settings checked and resolved; ConfigError saying what to change."""
    gid = None if group is None else _gid(group)
    dir_mode = _mode(mode) if mode is not None else (SHARED_DIR if gid is not None else None)
    return ResultsSharing(gid, dir_mode)


def _gid(group: str) -> int:
    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(
            f"results_group {group!r} is not a group on this machine; create it or fix the name"
        ) from None
    if os.geteuid() != 0 and gid != os.getegid() and gid not in os.getgroups():
        raise ConfigError(
            f"results_group {group!r}: batchd's user may not give files to that group; make the user a member "
            "(usermod -aG GROUP USER, then restart) or choose one of its groups"
        )
    return gid


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise ConfigError(f'results_mode must be an octal folder mode such as "0750", not {text!r}') from None
    if mode & ~0o777 or mode & OWNER_ONLY_DIR != OWNER_ONLY_DIR:
        raise ConfigError(f'results_mode {text!r} must be 0700-0777 and keep the owner\'s rwx (e.g. "0750")')
    return mode
