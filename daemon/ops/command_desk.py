"""The daemon's side of the operators' commands: take requests in from the spool, carry them out, answer.

Requests arrive as files (ops/command_queue.py explains why a folder and not the database). The
main loop claims them on every pass (the folder is watched, so a request wakes it at once): each is
entered in the commands table with who asked (the file's owner: a group member cannot pose as
another user), and only then is its file removed, so a crash in between enters it once (the id is
the key). Each command then runs on a worker, as its own step: cancel talks to the service, which
must not hold up the loop. Its outcome goes to the table and to ``ID.outcome.json`` for the caller.

A command a crash interrupted is still ``requested`` and runs again on the next start: cancel and
abandon may be repeated safely; a second retry finds the input gone from failed/ and is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from watchdog.observers.api import BaseObserver

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.intake.watcher import Hint, start_observer
from daemon.logs import get_logger
from daemon.ops.command_queue import (
    OUTCOME_SUFFIX,
    REQUEST_SUFFIX,
    DaemonPresence,
    spool_folder,
    write_outcome,
)
from daemon.redaction import redact
from daemon.service.profile_services import ProfileServices
from daemon.state.command_queries import DONE, FAILED, REFUSED, Command, command_from_dict
from daemon.state.fileops import OWNER_ONLY_DIR
from daemon.state.store import Store

log = get_logger(__name__)
OUTCOME_KEPT = 86400.0  # an outcome nobody came for is removed after a day (the table keeps it)
PRUNE_EVERY = 3600.0  # seconds between looks for such outcomes
CLAIMS_PER_PASS = 100  # requests entered per pass of the main loop; more wait for the next (rung at once)


class CommandRefusedError(DaemonError):
    """The command must not be carried out (an unknown job, a job in the wrong state): the reason."""


# A handler carries out one command and returns what to tell the operator; it raises CommandRefusedError,
# or any DaemonError when it could not (the command failed).
Handler = Callable[[Command], str]
Handlers = Mapping[str, Handler]
# Builds the handlers for the daemon's settings, state and services (the cli does: the code of the
# commands lives there, above this floor).
HandlerFactory = Callable[[Settings, Store, ProfileServices], Handlers]


class CommandDesk:
    def __init__(self, root: Path, store: Store, handlers: Handlers, stop: threading.Event) -> None:
        self.root = root
        self.folder = spool_folder(root)
        self.store = store
        self.handlers = handlers
        self._stop = stop
        self._presence = DaemonPresence(root)
        self._events: queue.Queue[Hint | None] = queue.Queue()  # only wakes the loop; drained each claim
        self._observer: BaseObserver | None = None
        self._ring: Callable[[], None] = lambda: None
        self._next_prune = 0.0  # monotonic

    def open(self, watch_mode: str, ring: Callable[[], None]) -> None:
        """Make the folder (owner-only unless set up shared, see systemd/batchd.tmpfiles), show that a
        daemon takes commands, and watch for requests."""
        self._ring = ring
        try:
            self.folder.mkdir(mode=OWNER_ONLY_DIR, exist_ok=True)
            if not self._presence.acquire(self._stop):
                log.warning("command_lock_busy", path=str(self._presence.path), action="commands still taken")
            self._observer = start_observer(self.folder, self._events, watch_mode, ring)
        except OSError as exc:  # the daemon runs on; commands act directly, as without a daemon
            log.error("commands_unavailable", folder=str(self.folder), error=exc.strerror or str(exc))

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=1.0)
            self._observer = None
        self._presence.release()

    def claim(self) -> list[Command]:
        """Enter every request in the spool; return the commands still to carry out (oldest first)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._events.get_nowait()
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            names = []
        requests = [n for n in names if n.endswith(REQUEST_SUFFIX) and not n.startswith(".")]
        for name in requests[:CLAIMS_PER_PASS]:
            self._enter(self.folder / name)
        if len(requests) > CLAIMS_PER_PASS:
            self._ring()  # the rest at the next pass, which this makes come at once
        self._prune(names)
        return self.store.requested_commands()

    def _enter(self, path: Path) -> None:
        try:
            command = self._read(path)
        except (OSError, ValueError) as exc:
            log.warning("command_request_unreadable", file=path.name, error=str(exc))
            with contextlib.suppress(OSError):
                path.unlink()
            return
        if self.store.add_command(command):
            log.info(
                "command_requested",
                command_id=command.id,
                kind=command.kind,
                target=command.target,
                requested_by=command.requested_by,
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def _read(self, path: Path) -> Command:
        with open(path, "rb") as fh:
            owner = os.fstat(fh.fileno()).st_uid
            data = json.loads(fh.read(64 * 1024))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data |= {"id": path.name.removesuffix(REQUEST_SUFFIX), "state": None, "result": None, "done_at": None}
        if owner != os.geteuid() or not isinstance(data.get("requested_by"), str):
            data["requested_by"] = _user_name(owner)  # another user: the file says who, not its text
        return command_from_dict(data)

    def _prune(self, names: list[str]) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY
        old = time.time() - OUTCOME_KEPT
        for name in names:
            path = self.folder / name
            with contextlib.suppress(OSError):
                if name.endswith(OUTCOME_SUFFIX) and path.stat().st_mtime < old:
                    path.unlink()

    def carry_out(self, command: Command) -> None:
        """Run the command's handler and record its outcome (in the table and for the caller)."""
        handler = self.handlers.get(command.kind)
        try:
            if handler is None:
                raise CommandRefusedError(f"unknown command {command.kind!r}")
            state, result = DONE, handler(command)
        except CommandRefusedError as exc:
            state, result = REFUSED, str(exc)
        except DaemonError as exc:
            state, result = FAILED, str(exc)
        except Exception as exc:
            log.exception("command_crashed", command_id=command.id, error_type=type(exc).__name__)
            state, result = FAILED, f"internal error ({type(exc).__name__}); see the daemon's log"
        result = redact(result)
        done_at = time.time()
        self.store.end_command(command.id, state, result, done_at)
        ended = self.store.command(command.id) or command
        try:
            write_outcome(self.root, ended)
        except OSError as exc:
            log.error("command_outcome_unwritten", command_id=command.id, error=exc.strerror)
        event = "command_done" if state == DONE else f"command_{state}"
        log.info(event, command_id=command.id, kind=command.kind, target=command.target, result=result)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
