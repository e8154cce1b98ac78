"""sd_notify(3) in the standard library: tell systemd we are ready, alive, busy or stopping.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named in
``$NOTIFY_SOCKET``. Outside systemd (a terminal, a container) that variable is unset and every
method here does nothing, so the engine can call them unconditionally.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from daemon.logs import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends state changes to the service manager; never raises, never blocks."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog = watchdog_seconds(env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", ""))
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self) -> bool:
        """Start-up is over: systemd starts units ordered after us and `systemctl start` returns."""
        return self.notify("READY=1")

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status`."""
        # A newline would start a new KEY=VALUE field, so a stray one must not end up in the datagram.
        return self.notify("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> bool:
        """The main loop is alive; without this every WatchdogSec= systemd kills and restarts us."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutdown has begun, so systemd shows "deactivating" instead of waiting on a silent process."""
        return self.notify("STOPPING=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between systemd's watchdog deadlines, or None when it is off or meant for another process.

        sd_watchdog_enabled(3) asks for a ping every half of this, to leave room for a slow pass.
        """
        return self._watchdog

    def notify(self, *fields: str) -> bool:
        """Send the fields as one datagram; True if it went out, False if off or it failed."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Non-blocking: a full or stuck receive queue must not stall the main loop.
                sock.setblocking(False)
                sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            self._warn_once(exc)
            return False
        return True

    def _warn_once(self, exc: OSError) -> None:
        # Once is enough to explain a start-up timeout or a watchdog kill; every 5 s would flood the journal.
        if not self._warned:
            self._warned = True
            log.warning("sd_notify_failed", socket=self._address, error=exc.strerror or str(exc))


def socket_address(value: str) -> str | None:
    """The address to send to, or None: "@name" is Linux's abstract namespace, spelled with a NUL."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    # Unset, empty or a kind we do not speak (systemd 254+ also offers vsock:): behave as outside systemd.
    return None


def watchdog_seconds(usec: str, pid: str, own_pid: int | None = None) -> float | None:
    """Parse $WATCHDOG_USEC; None unless it is a positive number meant for this very process."""
    # systemd sets WATCHDOG_PID so that a child that inherits the environment does not think the
    # watchdog is its job; a mismatch means "not you".
    if pid and pid.strip() != str(os.getpid() if own_pid is None else own_pid):
        return None
    try:
        micros = int(usec)
    except ValueError:
        return None
    return micros / 1_000_000 if micros > 0 else None
