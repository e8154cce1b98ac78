"""`python -m daemon.emulator`: run the emulator standalone until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from daemon.emulator.cli import add_emulator_arguments, run_emulator_command


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.emulator", description=__doc__)
    add_emulator_arguments(parser)
    args = parser.parse_args()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return run_emulator_command(args, stop)


if __name__ == "__main__":
    sys.exit(main())
