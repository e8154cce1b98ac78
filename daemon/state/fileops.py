"""Durable file operations: atomic writes, no-clobber moves, directory fsync.

A rename is atomic on one filesystem but only durable once its directory is fsynced; and
``os.replace`` silently overwrites, so moves that must never destroy a user's file use
``os.link`` + ``os.unlink``, which fail with EEXIST instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from daemon import crashpoints

OWNER_ONLY_FILE = 0o600
OWNER_ONLY_DIR = 0o700


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(dest: Path, mode: int = OWNER_ONLY_FILE) -> Iterator[IO[bytes]]:
    """Yield a binary file that appears at ``dest`` only once fully written and synced."""
    tmp = dest.with_name(f".{dest.name}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(dest.parent)


def write_atomic(dest: Path, data: bytes, mode: int = OWNER_ONLY_FILE) -> None:
    with atomic_writer(dest, mode) as fh:
        fh.write(data)


def free_name(folder: Path, name: str, tag: str) -> Path:
    """Return ``folder/name`` if unused, else a name carrying ``tag`` so nothing is overwritten."""
    candidate = folder / name
    if not candidate.exists():
        return candidate
    stem, dot, ext = name.partition(".")
    for n in range(1, 1000):
        suffix = tag if n == 1 else f"{tag}-{n}"
        candidate = folder / (f"{stem}.{suffix}{dot}{ext}" if dot else f"{name}.{suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name for {name} in {folder}")


def relink(src: Path, dest: Path, linked_point: str) -> None:
    """Move ``src`` to ``dest`` by a link and an unlink, never overwriting ``dest`` (not synced).

    Also never a rename out of a watched folder where it can be avoided: watchdog holds every later
    event for half a second after one. ``linked_point`` names the crash point between the two steps.
    """
    try:
        os.link(src, dest, follow_symlinks=False)  # move a symlink itself, never its target
    except FileExistsError:
        raise
    except OSError:
        # Some filesystems (SMB, some FUSE mounts) cannot hard-link, nor can a directory be linked;
        # fall back to a checked rename. A vanished src raises FileNotFoundError from the rename.
        if dest.exists():
            raise FileExistsError(dest) from None
        os.rename(src, dest)
    else:
        crashpoints.reach(linked_point)
        os.unlink(src)


def move_no_clobber(src: Path, dest: Path) -> None:
    """Move ``src`` to ``dest`` on the same filesystem, durably; never overwrite an existing ``dest``."""
    relink(src, dest, "input_linked")
    fsync_dir(dest.parent)
    if src.parent != dest.parent:
        fsync_dir(src.parent)


def same_file(a: Path, b: Path) -> bool:
    """Whether two names are links to one file (a move half done: linked, not yet unlinked)."""
    first, second = os.lstat(a), os.lstat(b)  # lstat: an input that is a symlink is moved as itself
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def safe_component(name: str) -> str:
    """A file name taken from a user's file, made safe to use as one path component."""
    cleaned = "".join("_" if (ord(ch) < 32 or ch in "/\\\x7f") else ch for ch in name).strip()
    if cleaned in {"", ".", ".."} or cleaned.startswith("."):
        cleaned = "_" + cleaned
    # NAME_MAX (255) counts bytes: 200 leaves room for a job-id tag and ".report.txt". Cut whole characters.
    return cleaned.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")


def fingerprint(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and size, read in chunks (files here run to gigabytes)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
