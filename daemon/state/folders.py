"""The folder contract: create the folders, prove they are writable and on one filesystem."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

from daemon.config import FOLDER_KEYS, Settings
from daemon.errors import AlreadyRunningError, FolderError
from daemon.results_sharing import ResultsSharing, results_sharing
from daemon.state.fileops import OWNER_ONLY_DIR

LOCK_NAME = "batchd.lock"
DB_NAME = "batchd.sqlite3"
INFLIGHT = "inflight"  # claimed inputs, under state/, until their results are written
PARTS = "parts"  # the normalised part files that are uploaded, under state/
PACKS = "packs"  # per pack, under state/: its shared part file and its downloads until handed back


def prepare(settings: Settings) -> None:
    """Create every folder and check the contract; raise FolderError saying what to fix."""
    _make_root(settings.root)
    for key in FOLDER_KEYS:
        _make(settings.path(key), private=key in {"state_dir", "results_dir"})
    for sub in (INFLIGHT, PARTS, PACKS):
        _make(settings.state / sub, private=True)
    sharing = results_sharing(settings.results_group, settings.results_mode)
    for key in ("results_dir", "failed_dir"):  # where the people who drop files look
        _share(sharing, settings.path(key))
    for key in FOLDER_KEYS:
        _check_writable(settings.path(key))
    _check_one_filesystem(settings)


def _make_root(root: Path) -> None:
    """Create a missing root, but not its parents: a typo in a path must not build a tree somewhere."""
    if root.is_dir():
        return
    parent = root.absolute().parent
    if not parent.is_dir():
        raise FolderError(
            f"root folder {root} does not exist, and neither does its parent {parent}; "
            "create the parent (batchd creates the root itself) or fix `root` / --root"
        )
    _make(root, private=False)


def _make(path: Path, *, private: bool) -> None:
    try:
        path.mkdir(mode=OWNER_ONLY_DIR if private else 0o777, parents=False, exist_ok=True)
    except OSError as exc:
        raise FolderError(f"cannot create folder {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise FolderError(f"{path} exists but is not a folder; move it away")


def _share(sharing: ResultsSharing, path: Path) -> None:
    try:
        sharing.share(path)
    except OSError as exc:
        raise FolderError(f"cannot give {path} the results_group/results_mode: {exc.strerror}") from None


def _check_writable(path: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".batchd-probe-"):
            pass
    except OSError as exc:
        raise FolderError(f"folder {path} is not writable ({exc.strerror}); fix its owner or mode") from None


def _check_one_filesystem(settings: Settings) -> None:
    """Renames between our folders must be atomic, which only holds within one filesystem."""
    devices = {key: settings.path(key).stat().st_dev for key in FOLDER_KEYS}
    if len(set(devices.values())) > 1:
        split = ", ".join(f"{getattr(settings, k)}" for k in FOLDER_KEYS)
        raise FolderError(
            f"folders {split} are not all on one filesystem; renames between them would not be "
            "atomic. Mount one parent volume (e.g. a single /data) instead of one per folder."
        )


class PidLock:
    """A lock file held for the life of the process, with the holder's pid written in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def _hold(self, fh: IO[str]) -> None:
        """``fh`` is locked: name this process in it and keep it open until ``release``."""
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class InstanceLock(PidLock):
    """An exclusive lock on state/batchd.lock, held for the life of the process."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir / LOCK_NAME)

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # owner-only, like all state
        fh = open(fd, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise AlreadyRunningError(
                f"another batchd (pid {holder}) is already running on this root; "
                "stop it first, or give this one a different root"
            ) from None
        self._hold(fh)
