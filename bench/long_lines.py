"""Peak RSS of the real daemon rejecting inputs whose one line is far over max_line_bytes.

One input of a single 300 MiB line (a request with a huge inline value, like base64 images, and no
newline at the end), then four of them dropped at once (one per worker). The daemon runs as a child
process (`python -m daemon run`) against the emulator in this process on 127.0.0.1; its peak RSS is
VmHWM read from /proc just before SIGTERM, and ru_maxrss of that child from wait4 after it exits.
Each input must end in failed/ with a report giving the line's true size.
Run: .venv/bin/python -m bench.long_lines [--line-mib 300 --files 4 --workers 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.common import scratch, verdict
from bench.daemon_process import DaemonProcess
from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import wait_until

RSS_LIMIT_MB = 150.0
TIMEOUT = 300.0  # the inputs are read once each, streamed, on 2 shared cores
DAEMON = {"poll_interval": 1, "first_poll_after": 0.5, "scan_interval": 1, "min_file_age": 1}
_PIECE = 1 << 20


@dataclass(frozen=True, slots=True)
class Run:
    files: int
    line_bytes: int
    started_mb: float  # VmHWM once the daemon is up, before any input
    vmhwm_mb: float
    maxrss_mb: float
    reported: int  # reports in failed/ that give the line's true size

    @property
    def peak_mb(self) -> float:
        return max(self.vmhwm_mb, self.maxrss_mb)


def write_long_line(path: Path, mib: int) -> int:
    """One request whose body holds ``mib`` MiB of filler, without a newline; return the line's size."""
    head = (
        b'{"custom_id": "huge", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "x": "'
    )
    with open(path, "wb") as fh:
        fh.write(head)
        piece = b"A" * _PIECE
        for _ in range(mib):
            fh.write(piece)
        fh.write(b'"}}')
    return path.stat().st_size


def measure(emulator: EmulatorServer, files: int, mib: int, settings: dict[str, object]) -> Run:
    root = scratch()
    try:
        staging = root / "staging"
        staging.mkdir()
        names = [f"long{n}.jsonl" for n in range(files)]
        size = 0
        for name in names:
            size = write_long_line(staging / name, mib)
        with DaemonProcess(root, emulator.base_url, {**DAEMON, **settings}) as daemon:
            daemon.wait_for_event("daemon_started", timeout=60)
            started = daemon.peak_rss_mb()
            for name in names:  # all at once: one scan claims them together
                os.rename(staging / name, root / "pending_upload" / name)
            _wait_for_rejections(daemon, files)
            vmhwm = daemon.peak_rss_mb()
            exit_info = daemon.stop()
        reported = sum(_gives_true_size(root / "failed" / f"{name}.report.txt", size) for name in names)
        return Run(files, size, started, vmhwm, exit_info.max_rss_mb, reported)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_rejections(daemon: DaemonProcess, files: int) -> None:
    def all_rejected() -> bool:
        if not daemon.running():
            raise RuntimeError(f"the daemon exited; see {daemon.log_path}")
        return len(daemon.events("file_rejected")) >= files

    wait_until(all_rejected, timeout=TIMEOUT, what=f"{files} file_rejected events", every=0.2)


def _gives_true_size(report: Path, size: int) -> bool:
    return report.exists() and f"line is {size:,} bytes" in report.read_text(encoding="utf-8")


def show(run: Run) -> None:
    print(
        f"long lines, {run.files} file(s) of one {run.line_bytes:,}-byte line: peak RSS {run.vmhwm_mb:.1f} MB "
        f"(VmHWM), {run.maxrss_mb:.1f} MB (wait4 ru_maxrss); {run.started_mb:.1f} MB before the drop; "
        f"{run.reported} report(s) give the true size"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--line-mib", type=int, default=300, help="filler per line, MiB (default 300)")
    parser.add_argument("--files", type=int, default=4, help="inputs dropped at once in the second run")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-line-mib", type=int, help="the daemon's max_line_bytes in MiB (default: its own)")
    args = parser.parse_args()
    settings: dict[str, object] = {"workers": args.workers}
    if args.max_line_mib is not None:
        settings["max_line_bytes"] = args.max_line_mib << 20
    with EmulatorServer(EmulatorSettings()) as emulator:
        one = measure(emulator, 1, args.line_mib, settings)
        show(one)
        many = measure(emulator, args.files, args.line_mib, settings)
        show(many)
    for run in (one, many):
        what = f"{run.files} file(s) of a {args.line_mib} MiB line"
        print(verdict(run.reported == run.files, f"{what}: each rejected, its report giving the true size"))
        print(verdict(run.peak_mb <= RSS_LIMIT_MB, f"{what}: peak RSS {run.peak_mb:.1f} MB <= {RSS_LIMIT_MB:.0f} MB"))


if __name__ == "__main__":
    main()
