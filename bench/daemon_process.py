"""The real daemon in its own process, as a user runs it: start, wait for log events, peak RSS, stop.

`python -m daemon run --root R` with `OPENAI_BASE_URL` pointed at an emulator and a dummy key; the
settings go in as `BATCHD_*` environment variables. Logs are JSON lines in a file under the root.
Peak RSS is what the kernel says: `VmHWM` from /proc while it runs, `ru_maxrss` from wait4 after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support import service_env, spawn_daemon

STOP_TIMEOUT = 20.0  # batchd promises to exit within 10 s of SIGTERM; give it twice that
PAUSE = 0.02


@dataclass(frozen=True, slots=True)
class Exit:
    code: int
    max_rss_mb: float  # ru_maxrss of this one child, from wait4


class DaemonProcess:
    def __init__(
        self, root: Path, base_url: str, settings: Mapping[str, object], env: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.log_path = root / "daemon.log"
        self._env = service_env(base_url, settings) | dict(env or {})  # env: e.g. a webhook secret
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._records: list[dict[str, Any]] = []
        self.started_at = 0.0

    def start(self) -> DaemonProcess:
        self.started_at = time.monotonic()
        self._proc = spawn_daemon(self.root, self._env, self.log_path)
        return self

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the daemon is not started")
        return self._proc.pid

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_for_event(self, event: str, timeout: float) -> float:
        """Block until the daemon logs ``event``; return the monotonic time it was noticed."""
        pause = threading.Event()
        deadline = time.monotonic() + timeout
        while not self._has_logged(event):
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({self._proc.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the daemon did not log {event} within {timeout:.0f} s; see {self.log_path}")
            pause.wait(PAUSE)
        return time.monotonic()

    def _has_logged(self, event: str) -> bool:
        with open(self.log_path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a non-JSON line (e.g. a traceback from a library) is not an event
            if isinstance(record, dict):
                self._records.append(record)
        return any(r.get("event") == event for r in self._records)

    def events(self, event: str) -> list[dict[str, Any]]:
        """The records of ``event`` logged so far (as read by the last wait)."""
        self._has_logged(event)
        return [r for r in self._records if r.get("event") == event]

    def peak_rss_mb(self) -> float:
        """The high-water mark of resident memory so far (VmHWM), in MB (10^6 bytes)."""
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
        raise RuntimeError("VmHWM missing from /proc/<pid>/status")

    def stop(self) -> Exit:
        """SIGTERM, then reap with wait4 (for this child's own ru_maxrss); SIGKILL after STOP_TIMEOUT."""
        if self._proc is None:
            raise RuntimeError("the daemon is not started")
        if self._proc.returncode is not None:
            return Exit(self._proc.returncode, 0.0)
        self._proc.send_signal(signal.SIGTERM)
        pause = threading.Event()
        deadline = time.monotonic() + STOP_TIMEOUT
        pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        while pid == 0 and time.monotonic() < deadline:
            pause.wait(PAUSE)
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            self._proc.kill()
            pid, status, usage = os.wait4(self.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        return Exit(self._proc.returncode, usage.ru_maxrss * 1024 / 1e6)  # ru_maxrss is in KiB on Linux

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self.stop()
