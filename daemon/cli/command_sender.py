"""`batchd cancel|abandon|retry`: through the running daemon when there is one, else directly.

The daemon holds the key and the state; an operator (in the ``batchd`` group under systemd, or in
the demo's second terminal) holds neither, so the command is left for the daemon (ops/command_queue.py)
and its outcome awaited and printed. With no daemon on this root, the command is carried out here, as
it always was: cancel and abandon then need a key, and say so if there is none.
"""

from __future__ import annotations

import os
import pwd
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from daemon.cli.root_guard import require_root
from daemon.config import Settings
from daemon.display import printable
from daemon.errors import AlreadyRunningError, CredentialError, DaemonError
from daemon.ops.command_queue import (
    command_outcome,
    daemon_presence,
    forget_outcome,
    request_command,
    withdraw_request,
)
from daemon.state import folders
from daemon.state.command_queries import DONE, Command

WAIT_STEP = 0.1
EXIT_OK, EXIT_FAILURE = 0, 1
# Cancel says, batch by batch, what the service answered, also when it refused: on stdout, as run directly.
_REPORTS_LINES = frozenset({"cancel"})
_SAID = {"cancel": "cancel", "abandon": "abandon", "retry": "retry", "retry_failed": "retry --failed"}


def send_or_act(
    settings: Settings,
    kind: str,
    target: str,
    options: dict[str, Any],
    timeout: float,
    act: Callable[[], int],
) -> int:
    """Carry out the command through the daemon on ``settings.root``, or with ``act`` when none runs."""
    present = daemon_presence(settings.root)
    if present is False:
        return _act_directly(settings, kind, act)
    command_id = request_command(settings.root, kind, target, user_name(), options)
    outcome = _await(settings, command_id, timeout)
    if outcome is None:
        return EXIT_FAILURE
    forget_outcome(settings.root, command_id)
    lines = "\n".join(printable(line) for line in (outcome.result or "").splitlines())
    if outcome.state != DONE and kind not in _REPORTS_LINES:
        print(f"batchd: {_SAID[kind]} {outcome.state}: {lines}", file=sys.stderr)
        return EXIT_FAILURE
    if lines:
        print(lines)
    if outcome.state != DONE:
        return EXIT_FAILURE
    if kind == "abandon":  # the daemon ends it at its next pass: wait for that, as abandon always did
        from daemon.cli.abandon import see_ended_by_daemon  # noqa: PLC0415

        left = max(0.0, timeout - (time.time() - outcome.requested_at))
        see_ended_by_daemon(settings, target, outcome.requested_at, left)
    return EXIT_OK


def _act_directly(settings: Settings, kind: str, act: Callable[[], int]) -> int:
    require_root(settings)  # else the current folder was taken for the root: say so, not "no input called"
    if not _instance_running(settings):  # else a daemon runs that takes no commands: acting here is safe
        print(
            f"batchd: no daemon runs on {printable(str(settings.root))}; carrying out the {_SAID[kind]} here",
            file=sys.stderr,
        )
    try:
        return act()
    except CredentialError as exc:
        raise DaemonError(
            f"no daemon runs on {settings.root} to carry out the {_SAID[kind]}, and there is no key to do it "
            "here. Start the daemon (`batchd run`, or `batchd run --emulator` for the demo) and try again, "
            f"or give this command the key ({exc})"
        ) from None


def _instance_running(settings: Settings) -> bool:
    lock = folders.InstanceLock(settings.state)
    if not settings.state.is_dir() or not os.access(settings.state, os.W_OK):
        return False
    try:
        lock.acquire()
    except (AlreadyRunningError, OSError):
        return True
    lock.release()
    return False


def _await(settings: Settings, command_id: str, timeout: float) -> Command | None:
    """The outcome within ``timeout`` seconds, or None after saying why there is none."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while (outcome := command_outcome(settings.root, command_id)) is None and time.monotonic() < deadline:
        pause.wait(WAIT_STEP)
    if outcome is not None:
        return outcome
    if withdraw_request(settings.root, command_id):
        print(
            f"batchd: no daemon took the command within {timeout:g} s, so it was withdrawn; is batchd running "
            "on this root (`systemctl status batchd`, `batchd healthcheck`)?",
            file=sys.stderr,
        )
    else:  # the daemon took the request in
        print(
            f"batchd: the daemon took the command (id {command_id}) but has not finished it within "
            f"{timeout:g} s; it goes on: its outcome is logged as command_done / command_failed / "
            "command_refused with this command_id",
            file=sys.stderr,
        )
    return None


def user_name() -> str:
    """Who asks, for the record (the daemon checks it against the request file's owner)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
