"""Asking the running daemon to carry out a command: the spool folder ``ROOT/commands/``.

The daemon holds the API key and knows the service, but the state database is owner-only (0600
under an owner-only state/), so an operator in the ``batchd`` group cannot write to it. A request
is therefore a small file in a folder of its own, which group members may write to when it is
made setgid and group-writable (systemd/batchd.tmpfiles does): ``ID.request.json``, written under a
dot name and renamed into place, so the daemon never reads half of one. The daemon enters it in its
commands table (state/command_queries.py) with the file's owner as who asked, carries it out, and
writes ``ID.outcome.json`` (group-readable) beside it. A file event wakes the daemon at once (it
watches this folder); nothing here polls the database.

Whether a daemon runs: it holds an exclusive lock on ``commands/daemon.lock`` for its life (the
instance lock under state/ is not readable by the group); ``daemon_presence`` tries a shared lock.

This is the whole API for a caller (the CLI, the web page): ``request_command``, ``command_outcome``,
``withdraw_request``, ``daemon_presence``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError
from daemon.state.command_queries import ENDED_COMMAND_STATES, Command, command_from_dict
from daemon.state.folders import PidLock

COMMANDS_DIR = "commands"  # under the root, beside pending_upload/
PRESENCE_NAME = "daemon.lock"
REQUEST_SUFFIX = ".request.json"
OUTCOME_SUFFIX = ".outcome.json"
KINDS = ("cancel", "abandon", "retry", "retry_failed")
SHARED_FILE = 0o640  # requests and outcomes: readable by the group that may send commands
PRESENCE_TRIES = 40  # a command's probe holds the lock for microseconds: the daemon tries again a little
PRESENCE_STEP = 0.05


class CommandError(DaemonError):
    """A command cannot be sent; the message says why and what to do."""


def spool_folder(root: Path) -> Path:
    return root / COMMANDS_DIR


def request_command(
    root: Path, kind: str, target: str, requested_by: str, options: dict[str, Any] | None = None
) -> str:
    """Leave a request for the daemon on ``root``; its id. ``target``: the job's input name or id."""
    if kind not in KINDS:
        raise CommandError(f"unknown command {kind!r}; one of: {', '.join(KINDS)}")
    folder = spool_folder(root)
    command_id = uuid.uuid4().hex
    body: dict[str, Any] = {"id": command_id, "kind": kind, "target": target, "requested_by": requested_by}
    body |= {"requested_at": time.time(), "options": options or {}}
    tmp = folder / f".{command_id}.tmp"
    try:
        _write_shared(tmp, json.dumps(body).encode())
        os.rename(tmp, folder / f"{command_id}{REQUEST_SUFFIX}")
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CommandError(
            f"cannot leave a command in {folder} ({exc.strerror}); the daemon creates it on start, and "
            "under systemd members of group batchd may write to it once systemd/batchd.tmpfiles is installed "
            "(`id` shows your groups; a new member must log in again)"
        ) from None
    return command_id


def command_outcome(root: Path, command_id: str) -> Command | None:
    """The command's outcome once the daemon carried it out; None until then."""
    try:
        data = json.loads((spool_folder(root) / f"{command_id}{OUTCOME_SUFFIX}").read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read the outcome of command {command_id}: {exc}") from None
    found = command_from_dict(data)
    return found if found.state in ENDED_COMMAND_STATES else None


def is_claimed(root: Path, command_id: str) -> bool:
    """Whether the daemon took the request in (its file is gone from the spool)."""
    return not (spool_folder(root) / f"{command_id}{REQUEST_SUFFIX}").exists()


def withdraw_request(root: Path, command_id: str) -> bool:
    """Take back a request nobody claimed; False if the daemon already took it in."""
    try:
        (spool_folder(root) / f"{command_id}{REQUEST_SUFFIX}").unlink()
    except FileNotFoundError:
        return False
    return True


def forget_outcome(root: Path, command_id: str) -> None:
    """The caller read it: the outcome stays in the daemon's commands table."""
    with contextlib.suppress(OSError):
        (spool_folder(root) / f"{command_id}{OUTCOME_SUFFIX}").unlink()


def write_outcome(root: Path, command: Command) -> None:
    """Publish a command's outcome to whoever asked (group-readable)."""
    folder = spool_folder(root)
    tmp = folder / f".{command.id}.outcome.tmp"
    _write_shared(tmp, json.dumps(command.as_dict()).encode())
    os.rename(tmp, folder / f"{command.id}{OUTCOME_SUFFIX}")


def _write_shared(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SHARED_FILE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, SHARED_FILE)  # whatever the umask (the service's is 0077): the group reads it
        fh.write(data)
        fh.flush()
        os.fsync(fd)


def daemon_presence(root: Path) -> bool | None:
    """True while a daemon that takes commands runs on ``root``, False when none does, None when
    this user cannot tell (the folder cannot be read)."""
    path = spool_folder(root) / PRESENCE_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a shared lock taken
    return False


class DaemonPresence(PidLock):
    """The running daemon's lock on ``commands/daemon.lock``: while held, commands go through it."""

    def __init__(self, root: Path) -> None:
        super().__init__(spool_folder(root) / PRESENCE_NAME)

    def acquire(self, stop: threading.Event) -> bool:
        """Take the lock (False if a probe kept it busy throughout: commands then act directly)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, SHARED_FILE)
        os.fchmod(fd, SHARED_FILE)
        fh = open(fd, "r+", encoding="utf-8")  # noqa: SIM115 - held open for the daemon's life
        for _ in range(PRESENCE_TRIES):
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if stop.wait(PRESENCE_STEP):
                    break
                continue
            self._hold(fh)
            return True
        fh.close()
        return False
