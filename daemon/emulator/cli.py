"""Command-line wiring: `batchd emulator` (the owner's CLI calls these two functions)."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from daemon.emulator.server import EmulatorServer
from daemon.emulator.settings import FLAVOURS, EmulatorSettings

DEFAULT_PORT = 8089
EMULATOR_DESCRIPTION = """Serve a local emulator of the OpenAI Files and Batches API on 127.0.0.1 (for tests, demos
and benchmarks; the answers are fake). It prints the two lines a client needs:
  export OPENAI_BASE_URL=http://127.0.0.1:8089/v1
  export OPENAI_API_KEY=emulator-key      (any non-empty key is accepted; with --api-key KEY only
                                          KEY: any other gets the service's 401, to try a wrong key)

A batch moves validating -> in_progress -> finalizing -> completed on the timings below. Trigger words in
a line's body.model choose another ending (the rest of the model name is free, e.g. gpt-4o-mini-expire):
  fail-validation   the batch fails at the end of validating with a batch-level error
  expire            the batch expires at the end of in_progress with about half its requests done
                    (azure flavour: it stays in_progress until cancelled instead)
  fail-all          the batch completes with every request in the error file and no output file
--request-error-rate makes that fraction of requests fail with an HTTP error line.
Anthropic flavour: in a request's params.model fail-all errors that request, expire leaves half the
batch to expire, fail-validation refuses the create (400); in a request's message or system text
fail-request, fail-overloaded, fail-rate-limit or fail-api-error errors that request alone
(invalid_request_error, overloaded_error, rate_limit_error, api_error).

Faults, changed while it runs over HTTP (no key needed), all bounded in count:
  curl -X POST $URL/_emulator/faults -d '{"error_rate": 0.2}'            500s on 20% of requests
  curl -X POST $URL/_emulator/faults -d '{"rules": [{"method": "POST", "path_prefix": "/v1/batches",
       "action": "status", "status": 429, "count": 3}]}'                  also: drop, slow, drop_midway,
                                                                          tamper, reply, hold
  curl -X DELETE $URL/_emulator/faults                                   clear them
  curl -X POST $URL/_emulator/batches -d '{"vanish": ["batch_..."]}'     forget a batch (404); also
                                                                          restore, never_end, vanish_next,
                                                                          never_end_next
  curl $URL/_emulator/calls                                              requests counted per route
With --data-dir its files and batches are kept in that folder (state.json; message_batches.json for
--flavour anthropic) and a restart goes on with them; without it everything lives in a temporary folder
removed at exit. `batchd run --emulator` keeps its emulators' state under ROOT/.emulator/."""


_DEFAULTS = EmulatorSettings()
# (flag, type, default, help); argparse derives the Namespace attribute from the flag.
_OPTIONS: tuple[tuple[str, type, object, str], ...] = (
    ("--host", str, "127.0.0.1", "address to listen on (default: %(default)s)"),
    ("--port", int, DEFAULT_PORT, "port to listen on; 0 picks a free one (default: %(default)s)"),
    (
        "--validating-seconds",
        float,
        _DEFAULTS.validating_seconds,
        "seconds a batch stays validating (default: %(default)s)",
    ),
    (
        "--in-progress-seconds",
        float,
        _DEFAULTS.in_progress_seconds,
        "seconds a batch stays in_progress (default: %(default)s)",
    ),
    (
        "--finalizing-seconds",
        float,
        _DEFAULTS.finalizing_seconds,
        "seconds a batch stays finalizing (default: %(default)s)",
    ),
    (
        "--cancelling-seconds",
        float,
        _DEFAULTS.cancelling_seconds,
        "seconds a batch stays cancelling (default: %(default)s)",
    ),
    (
        "--data-dir",
        Path,
        None,
        "where to keep files and batches (state.json, or message_batches.json with the anthropic flavour); "
        "a restart goes on with them "
        "(default: a temporary directory, removed at exit)",
    ),
    ("--seed", int, _DEFAULTS.seed, "seed for fake answers, output order and failing requests (default: %(default)s)"),
    (
        "--request-error-rate",
        float,
        _DEFAULTS.request_error_rate,
        "fraction of batch requests that fail with a per-request HTTP error line (default: %(default)s)",
    ),
    ("--create-limit", int, None, "batch creations allowed per --create-window; beyond, 429 (default: unlimited)"),
    ("--create-window", float, _DEFAULTS.create_window, "seconds of the --create-limit window (default: %(default)s)"),
    ("--token-limit", int, None, "enqueued-token limit per model; over it batches fail (default: unlimited)"),
    (
        "--token-weight",
        float,
        _DEFAULTS.token_weight,
        "times its estimate a batch weighs against --token-limit, as dense text does (default: %(default)s)",
    ),
    (
        "--error-rate",
        float,
        0.0,
        "fraction of all API requests answered with HTTP 500 without processing (default: %(default)s)",
    ),
    (
        "--reply-rate",
        float,
        0.0,
        "fraction of API requests (downloads excepted) carried out, then answered with a malformed 200"
        " (default: %(default)s)",
    ),
)


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default, help_text in _OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=help_text)
    parser.add_argument(
        "--string-bodies", action="store_true", help="write response.body as a JSON-encoded string (llama-stack)"
    )
    parser.add_argument(
        "--drop-cancelled-results",
        action="store_true",
        help="a cancelled batch counts its finished requests but returns no lines for them",
    )
    add_flavour_arguments(parser)


def add_flavour_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default=_DEFAULTS.flavour,
        help="the service to imitate: openai, azure (api-key, /openai/v1/ paths, deployments, no expiry), "
        "compatible (string bodies, no metadata, no finalizing) or anthropic (Message Batches at "
        "/v1/messages/batches; its trigger words below) (default: %(default)s)",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        dest="deployments",
        metavar="NAME",
        help="azure: a GlobalBatch deployment name lines may use as `model`; repeat for more "
        f"(default: {', '.join(_DEFAULTS.deployments)})",
    )
    parser.add_argument(
        "--file-limit",
        type=int,
        default=None,
        metavar="N",
        help="input files kept at once (an Azure resource: 500); an upload beyond it is refused (default: no limit)",
    )
    parser.add_argument("--upper-statuses", action="store_true", help="compatible: statuses in upper case (Novita)")
    parser.add_argument(
        "--iso-timestamps", action="store_true", help="compatible: batch times as ISO 8601 text (Together)"
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="openai, compatible: accept only this key; any other is refused with the service's 401 "
        "invalid_api_key, as a wrong key is (default: any non-empty key)",
    )
    parser.add_argument(
        "--expiry-seconds",
        type=float,
        default=_DEFAULTS.expiry_seconds,
        help="anthropic: seconds from creation to expires_at; requests not run by then end expired "
        "(default: %(default)s)",
    )


def settings_from_arguments(args: argparse.Namespace) -> EmulatorSettings:
    return EmulatorSettings(
        validating_seconds=args.validating_seconds,
        in_progress_seconds=args.in_progress_seconds,
        finalizing_seconds=args.finalizing_seconds,
        cancelling_seconds=args.cancelling_seconds,
        data_dir=args.data_dir,
        keep_state=args.data_dir is not None,
        seed=args.seed,
        request_error_rate=args.request_error_rate,
        token_limit=args.token_limit,
        string_bodies=args.string_bodies,
        drop_cancelled_results=args.drop_cancelled_results,
        token_weight=args.token_weight,
        create_limit=args.create_limit,
        create_window=args.create_window,
        file_limit=args.file_limit,
        flavour=args.flavour,
        deployments=tuple(args.deployments) if args.deployments else _DEFAULTS.deployments,
        upper_statuses=args.upper_statuses,
        iso_timestamps=args.iso_timestamps,
        expiry_seconds=args.expiry_seconds,
        api_key=args.api_key,
    )


def run_emulator_command(args: argparse.Namespace, stop: threading.Event) -> int:
    """Serve until `stop` is set (the caller's signal handlers set it), then shut down cleanly."""
    server = EmulatorServer(settings_from_arguments(args), host=args.host, port=args.port)
    if args.error_rate:
        server.faults.set_error_rate(args.error_rate)
    if args.reply_rate:
        server.faults.set_reply_rate(args.reply_rate)
    with server:
        print(f"emulator listening on {server.base_url}", flush=True)
        print(client_lines(server.base_url, args.flavour, args.api_key), flush=True)
        stop.wait()
    return 0


def client_lines(base_url: str, flavour: str, api_key: str | None = None) -> str:
    """The shell lines that point a client (the SDK, or batchd) at this emulator."""
    if flavour == "azure":  # a batchd profile's table names the url; the key variable is its default
        profile = f'# and in [providers.NAME]: kind = "azure", base_url = "{base_url}/"'
        return f"export AZURE_OPENAI_API_KEY=emulator-key\n{profile}"
    if flavour == "anthropic":  # the SDK's variables; a batchd profile names the url in its table
        profile = f'# and in [providers.NAME]: kind = "anthropic", base_url = "{base_url}"'
        return f"export ANTHROPIC_BASE_URL={base_url}\nexport ANTHROPIC_API_KEY=emulator-key\n{profile}"
    if api_key is not None:
        return f"export OPENAI_BASE_URL={base_url}\nexport OPENAI_API_KEY={api_key}  # only this key"
    return f"export OPENAI_BASE_URL={base_url}\nexport OPENAI_API_KEY=emulator-key  # any non-empty key"
