"""An idle daemon sleeps until its next timer, an hour away here, and SIGTERM still ends it at once with exit 0.

The signal handler only sets the stop flag; setting it must wake the main loop's sleep (doorbell.py).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from daemon.emulator import EmulatorServer
from tests.support import service_env, spawn_daemon, wait_until

HOUR = 3600  # every timer of the daemon (rescan, heartbeat, poll) this far away: only a wake-up ends its sleep
PROMPT = 10.0  # batchd promises to exit within 10 s of SIGTERM


def _logged(log: Path, event: str) -> bool:
    return any(line.startswith("{") and json.loads(line).get("event") == event for line in log.read_text().splitlines())


class MainThread:
    """The daemon's main thread as the kernel sees it: asleep, and how often it switched so far."""

    def __init__(self, pid: int) -> None:
        self._dir = Path(f"/proc/{pid}/task/{pid}")
        self._switches = -1

    def settled(self) -> bool:
        """Asleep, with no switch since the last look: it is in its long wait."""
        state = (self._dir / "stat").read_text().rpartition(")")[2].split()[0]
        status = (self._dir / "status").read_text().splitlines()
        switches = sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        settled, self._switches = state == "S" and switches == self._switches, switches
        return settled


def test_sigterm_during_a_long_idle_wait_exits_0_promptly(tmp_path: Path, emulator: EmulatorServer) -> None:
    root, log = tmp_path / "root", tmp_path / "daemon.log"
    root.mkdir()
    settings = {"scan_interval": HOUR, "heartbeat_interval": HOUR, "poll_interval": HOUR}
    proc = spawn_daemon(root, service_env(emulator.base_url, settings), log)
    try:
        wait_until(lambda: _logged(log, "daemon_started"), 30, "the daemon to start")
        main = MainThread(proc.pid)
        wait_until(main.settled, 30, "the main thread to sleep", every=0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=PROMPT + 5) == 0
        assert time.monotonic() - sent < PROMPT
    finally:
        proc.kill()
        proc.wait()
    assert _logged(log, "daemon_stopped")
