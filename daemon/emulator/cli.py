"""Command-line wiring: `batchd emulator` (the owner's CLI calls these two functions)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from daemon.emulator.server import EmulatorServer
from daemon.emulator.settings import EmulatorSettings

DEFAULT_PORT = 8089


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorSettings()
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--validating-seconds",
        type=float,
        default=defaults.validating_seconds,
        help="seconds a batch stays validating (default: %(default)s)",
    )
    parser.add_argument(
        "--in-progress-seconds",
        type=float,
        default=defaults.in_progress_seconds,
        help="seconds a batch stays in_progress (default: %(default)s)",
    )
    parser.add_argument(
        "--finalizing-seconds",
        type=float,
        default=defaults.finalizing_seconds,
        help="seconds a batch stays finalizing (default: %(default)s)",
    )
    parser.add_argument(
        "--cancelling-seconds",
        type=float,
        default=defaults.cancelling_seconds,
        help="seconds a batch stays cancelling (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="where to store files (default: a temporary directory)"
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed for fake answers and output order (default: %(default)s)"
    )
    parser.add_argument(
        "--request-error-rate",
        type=float,
        default=defaults.request_error_rate,
        help="fraction of batch requests that fail with a per-request HTTP error (default: %(default)s)",
    )
    parser.add_argument(
        "--token-limit",
        type=int,
        default=None,
        help="enqueued-token limit per model; over it a batch fails with token_limit_exceeded (default: none)",
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        help="fraction of all API requests answered with HTTP 500 without processing (default: %(default)s)",
    )


def settings_from_arguments(args: argparse.Namespace) -> EmulatorSettings:
    return EmulatorSettings(
        validating_seconds=args.validating_seconds,
        in_progress_seconds=args.in_progress_seconds,
        finalizing_seconds=args.finalizing_seconds,
        cancelling_seconds=args.cancelling_seconds,
        data_dir=args.data_dir,
        seed=args.seed,
        request_error_rate=args.request_error_rate,
        token_limit=args.token_limit,
    )


def run_emulator_command(args: argparse.Namespace, stop: threading.Event) -> int:
    """Serve until `stop` is set (the caller's signal handlers set it), then shut down cleanly."""
    server = EmulatorServer(settings_from_arguments(args), host=args.host, port=args.port)
    if args.error_rate:
        server.faults.set_error_rate(args.error_rate)
    with server:
        print(f"emulator listening on {server.base_url}", flush=True)
        stop.wait()
    return 0
