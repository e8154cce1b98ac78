"""The ``batchd`` command line: run, validate, wrap, status, cancel, abandon, retry, healthcheck, recover,
emulator, completion, help.

Exit codes (EXIT_CODES_TEXT): 0 success, 1 a runtime failure or problems found, 2 a usage or configuration
error that a restart cannot fix, 3 (recover) a profile's service could not be searched.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.cli.root_guard import root_hint
from daemon.config import Settings, load_settings
from daemon.display import printable
from daemon.errors import (
    AlreadyRunningError,
    ConfigError,
    CredentialError,
    DaemonError,
    FolderError,
    StateLostError,
)
from daemon.logs import configure, get_logger
from daemon.redaction import redact
from daemon.state.folders import DB_NAME

log = get_logger("daemon.cli.main")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_PROFILE_UNSEARCHED = 3  # recover: a profile's service could not be listed; run it again once it can
# Problems of the set-up, not of the moment: a restart cannot fix them, so they exit 2 (EXIT_CODES_TEXT).
# Another batchd on the root is one too for `run` only (two daemons configured on one root); for a
# one-off command such as `recover` it is a moment to wait for (exit 1).
SETUP_ERRORS = (CredentialError, FolderError, StateLostError)
EXIT_CODES_TEXT = """exit codes:
    0  success
    1  a failure while running, or problems found (validate, healthcheck, recover); a restart may help
    2  a usage or configuration error: a wrong setting, a missing or unreadable API key, a root whose
       parent does not exist, an unusable folder, another daemon on the same root (run). Restarting
       cannot fix it (systemd: RestartPreventExitStatus=2); the message says what to change.
    3  recover: the service of one or more provider profiles could not be searched (missing or refused
       key, wrong base_url, unreachable); the others were recovered, that profile's inputs were left
       as they are. The output says why and what to change; run recover again once it works
  130  interrupted (Ctrl-C) before the command could stop cleanly by itself"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchd",
        description="Turn a folder into a queue for the OpenAI Batch API: drop *.jsonl request files into\n"
        "pending_upload/, get results in input order in batch_results/.",
        epilog=EXIT_CODES_TEXT + "\n\nMore: `batchd help` lists the help topics; `batchd COMMAND --help`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_validate(sub)
    _add_wrap(sub)
    _add_status(sub)
    _add_cancel(sub)
    _add_abandon(sub)
    _add_retry(sub)
    _add_healthcheck(sub)
    _add_recover(sub)
    _add_emulator(sub)
    _add_completion(sub)
    _add_help(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file (see config/batchd.toml); env BATCHD_CONFIG")
    p.add_argument("--root", type=Path, help="folder holding pending_upload/, batch_results/ ... (default: .)")


def _add_run(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the daemon",
        description="Watch the drop zone and run every input "
        "through the Batch API until stopped (SIGTERM or Ctrl-C; a second one forces).",
    )
    _common(p)
    p.add_argument(
        "--emulator",
        action="store_true",
        help="use a built-in local emulator of the Batch API instead of OpenAI (fake answers, no key)",
    )
    p.add_argument("--poll-interval", type=float, help="longest wait between status checks, seconds (default 60)")
    p.add_argument("--min-file-age", type=float, help="quiet seconds before an event-less file is claimed")
    p.add_argument("--watch-mode", choices=("auto", "inotify", "polling"), help="polling for NFS/SMB mounts")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("auto", "json", "console"))
    p.add_argument("--web-port", type=int, help="serve the operator web page on this port (default: off)")


def _add_validate(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check request files without uploading anything",
        description="Run the checks batchd runs before an upload; exit 1 on any problem. A file is checked "
        "for its provider profile (url forms, limits): --profile, else its pending_upload/NAME/ folder's, "
        "else the default profile. For each file that passes, say how many batches it would make, its "
        "estimated input tokens and their cost at the batch price (the [prices] table of the config; output "
        "tokens are not known before the batch runs); per model for a file split by model (split_by_model).",
    )
    _common(p)
    p.add_argument("--profile", metavar="NAME", help="check as for provider profile NAME ([providers.NAME])")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument(
        "--format",
        choices=("auto", "openai", "anthropic"),
        default="auto",
        help="line shape to check: OpenAI Batch API lines, or Anthropic Message Batches lines "
        "({custom_id, params}, for a profile of kind anthropic); auto: the profile's, and for a file of the "
        "default profile the shape of its first line",
    )
    p.add_argument("--json", action="store_true", help="one JSON document: a list with one object per file")


def _add_wrap(sub: Any) -> None:
    p = sub.add_parser(
        "wrap",
        help="turn bare request bodies (or a JSON array) into Batch API lines",
        description="Read FILE: JSON Lines of bare request bodies such as "
        '{"model": ..., "messages": [...]}, or one JSON array of bodies or requests; write one Batch API '
        'request per line, {"custom_id": PREFIX + line number, "method": "POST", "url": URL, "body": ...}. '
        "The same file always gets the same custom_ids. Lines that already are Batch API requests are kept. "
        "Without --url the endpoint is taken from the bodies where their fields say it (messages: "
        "/v1/chat/completions; input with an embedding model: /v1/embeddings; ...).",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--url", help="the endpoint of every request, e.g. /v1/chat/completions (default: from the bodies)")
    p.add_argument("--id-prefix", default="line-", help="custom_id = this + the line number (default line-)")
    p.add_argument(
        "-o", "--output", default="-", help="where to write the lines (may be FILE itself; default: standard output)"
    )


def _add_status(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="show every job: file, state, batches, progress, results, tokens, estimated cost, age, why it waits",
        description="One line per job: its file, state, batch ids, progress, results once it ended, tokens, "
        "estimated cost, age (it stops when the job ends), a WHY column while a job waits, and its job id last; "
        "a MODELS column when a job's input was split by model; then a totals line, and the learned token limits "
        "with their age. Batch ids are shortened to "
        "their ends (the newest two, +N more): --wide lists them "
        "whole. --json for scripts, --watch to redraw until Ctrl-C. Reads the state database of --root; works "
        "while the daemon runs.",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts (one per line with --watch)")
    p.add_argument("--wide", action="store_true", help="every batch of a job, with its whole id")
    p.add_argument("--active", action="store_true", help="only the jobs that have not ended")
    p.add_argument(
        "--since",
        type=_duration,
        metavar="DURATION",
        help="only the jobs not ended or ended in the last DURATION (90s, 30m, 2h, 7d)",
    )
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=_positive_seconds, default=2.0, help="seconds between refreshes (default 2)")


def _positive(unit: str, most: int) -> Callable[[str], float]:
    """An argparse type: a number of ``unit`` above 0 and at most ``most``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, got {text!r}") from None
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(f"must be more than 0 and at most {most} {unit}, got {text}")
        return value

    return parse


_positive_seconds = _positive("seconds", 3600)


def _timeout_seconds(text: str) -> float:
    """0 to 3600 seconds (0: do not wait; `abandon --wait 0` always meant that)."""
    return 0.0 if text.strip() in ("0", "0.0") else _positive_seconds(text)


def _duration(text: str) -> float:
    from daemon.cli.status_totals import parse_duration  # noqa: PLC0415

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_positive_days = _positive("days", 3650)


def _add_retry(sub: Any) -> None:
    p = sub.add_parser(
        "retry",
        help="send a fixed input in failed/ back to the drop zone, or a job's failed requests (--failed)",
        description="Move NAME from failed/ back into pending_upload/ (under the name it was dropped with) "
        "once you fixed it; its old report moves to failed/retried/. With --failed: send again only the "
        "requests of a finished job that failed or did not run. Safe while the daemon runs.",
    )
    _common(p)
    p.add_argument("name", help="the input's name in failed/, the name it was dropped with, or its job id")
    p.add_argument("--force", action="store_true", help="send it even if it still fails validation")
    p.add_argument(
        "--failed",
        action="store_true",
        help="instead: drop a new input NAME.retry-failed.jsonl of only the failed and not-run requests "
        "of the finished job NAME (same custom_ids, the original lines)",
    )
    _timeout(p)


def _timeout(p: argparse.ArgumentParser, dest: str = "timeout", *aliases: str) -> None:
    p.add_argument(
        "--timeout",
        *aliases,
        dest=dest,
        type=_timeout_seconds,
        default=30.0,
        metavar="SECONDS",
        help="with a daemon running, the command is carried out by it: seconds to wait for its outcome (default 30)",
    )


def _add_cancel(sub: Any) -> None:
    p = sub.add_parser(
        "cancel",
        help="cancel a job's batches; what finished is still collected",
        description="Cancel the batches of the job NAME (its file name as dropped, or its job id). Requests "
        "that finished are still collected and written to its results; the others get 'batch_cancelled' "
        "lines. With a daemon running on the root, the daemon does it (it holds the key: this command needs "
        "none) and this command prints the outcome; with none, it is done here and needs the key. A cancel "
        "the service refuses is printed and not recorded (exit 1).",
    )
    _common(p)
    p.add_argument("name", help="the input's file name (as dropped) or the job id")
    p.add_argument("--emulator-url", help=argparse.SUPPRESS)
    _timeout(p)


def _add_abandon(sub: Any) -> None:
    p = sub.add_parser(
        "abandon",
        help="end a job now: keep what was collected, report the rest as not run",
        description="End the job of NAME on purpose. Results already collected are kept; every other request "
        "gets an 'abandoned' line in results.jsonl; the input goes to failed/ with a report saying it was "
        "abandoned and when. Without --cancel its batches run on at the service (and are paid for) and their "
        "results are not collected. Safe while the daemon runs: it ends the job at its next pass and never "
        "takes it up again; with no daemon running, this command ends it.",
    )
    _common(p)
    p.add_argument("name", help="the input's file name (as dropped) or the job id")
    p.add_argument(
        "--cancel",
        action="store_true",
        help="cancel the job's running batches first; the job then ends once they have ended and what they "
        "finished is collected",
    )
    _timeout(p, "wait", "--wait")


def _add_healthcheck(sub: Any) -> None:
    p = sub.add_parser(
        "healthcheck",
        help="exit 0 if the daemon on this root is alive and looping",
        description="Exit 0 only while the daemon on --root has written a heartbeat within --max-age seconds "
        "and its threads are alive; exit 1 otherwise, with the reason (for Docker HEALTHCHECK and monitors).",
    )
    _common(p)
    p.add_argument("--max-age", type=float, default=30.0, help="oldest acceptable heartbeat, seconds (default 30)")


def _add_recover(sub: Any) -> None:
    p = sub.add_parser(
        "recover",
        help="rebuild lost or damaged state from the files in state/ and the batches on the service",
        description="With the daemon stopped: rebuild the jobs a missing, emptied or damaged state database "
        "lost. Inputs in state/inflight/, part files in state/parts/ and packs in state/packs/ are matched with "
        "the batches and uploads the service lists (by their batchd metadata and sha256; on a service that drops "
        "metadata by their input files' names, batchd-JOB-SEG-ATT.jsonl; on an anthropic profile by "
        "request count and the custom_ids of the results): each input with a "
        "batch gets its job back (running batches are polled and collected as usual, nothing is submitted "
        "twice); an input never submitted moves back to pending_upload/ to be claimed again. A damaged "
        "database is kept beside as batchd.sqlite3.damaged-TIME. Prints what it did and what it could not "
        "match; running it again does nothing more. A profile whose service cannot be searched now (missing or "
        "refused key, wrong base_url, unreachable) is reported with the fix and its inputs are left as they are; "
        "the other profiles are recovered, and running it again once that profile works recovers the rest. "
        "Exit 0 when done, 1 if anything was left unmatched, 3 if a profile's service could not be searched.",
    )
    _common(p)
    p.add_argument(
        "--since-days",
        type=_positive_days,
        default=30.0,
        help="look at batches and uploads created this many days back (default 30: the 24 h completion "
        "window plus the service's output retention, with room to spare)",
    )
    p.add_argument(
        "--emulator",
        action="store_true",
        help="ask the built-in emulators, as `run --emulator` uses them: one per provider profile's kind, each "
        "keeping its files and batches under ROOT/.emulator/, so the batches of a demo are found again",
    )


def _add_emulator(sub: Any) -> None:
    from daemon.emulator.cli import EMULATOR_DESCRIPTION, add_emulator_arguments  # noqa: PLC0415 - only here

    p = sub.add_parser(
        "emulator",
        help="serve a local emulator of the Files and Batches API (for tests and demos)",
        description=EMULATOR_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_emulator_arguments(p)


def _add_completion(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="Print a completion script for bash or zsh, generated from batchd's own options. "
        "bash: `batchd completion bash > ~/.local/share/bash-completion/completions/batchd`; "
        "zsh: `batchd completion zsh > ~/.zfunc/_batchd` with ~/.zfunc in $fpath before compinit.",
    )
    p.add_argument("shell", choices=("bash", "zsh"))


def _add_help(sub: Any) -> None:
    from daemon.cli.help_topics import TOPICS  # noqa: PLC0415 - the topic names only

    p = sub.add_parser(
        "help",
        help="explain a topic (exit-codes, emulator, metadata, shared-results, ...) or a command",
        description="Without a topic: list the topics. With one: print it. With a command's name: its --help.",
    )
    p.add_argument(
        "topic",
        nargs="?",
        metavar="TOPIC",
        choices=tuple(dict.fromkeys((*TOPICS, *sub.choices))),  # every command is added by now; each name once
        help=f"one of: {', '.join(TOPICS)}, or a command",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a reader that went away (`batchd validate big.jsonl | head -1`) ends it quietly."""
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:  # Ctrl-C before a command set its own handlers (e.g. while `run` starts)
        print("batchd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _reader_gone() -> int:
    # Python would report the broken pipe again when it flushes stdout at exit: point it at /dev/null.
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_FAILURE


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "run": _cmd_run,
        "validate": _cmd_validate,
        "wrap": _cmd_wrap,
        "status": _cmd_status,
        "cancel": _cmd_cancel,
        "abandon": _cmd_abandon,
        "retry": _cmd_retry,
        "healthcheck": _cmd_healthcheck,
        "recover": _cmd_recover,
        "emulator": _cmd_emulator,
        "completion": _cmd_completion,
        "help": _cmd_help,
    }[args.command]
    try:
        return int(handler(args))
    except ConfigError as exc:
        print(shown_lines(f"batchd: configuration error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except SETUP_ERRORS as exc:
        print(shown_lines(redact(f"batchd: {exc}")), file=sys.stderr)
        return EXIT_USAGE
    except DaemonError as exc:
        print(shown_lines(redact(f"batchd: {exc}")), file=sys.stderr)
        return EXIT_FAILURE


def shown_lines(text: str) -> str:
    """A message for the terminal: control characters escaped line by line, so one of several lines
    (a retry refused with its problems listed) is not printed as a single line full of \\n."""
    return "\n".join(printable(line) for line in text.splitlines())


def settings_from(args: argparse.Namespace) -> Settings:
    config = args.config or (Path(os.environ["BATCHD_CONFIG"]) if os.environ.get("BATCHD_CONFIG") else None)
    overrides = {
        "root": args.root,
        "poll_interval": getattr(args, "poll_interval", None),
        "min_file_age": getattr(args, "min_file_age", None),
        "watch_mode": getattr(args, "watch_mode", None),
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
        "web_port": getattr(args, "web_port", None),
    }
    return load_settings(config, overrides={k: v for k, v in overrides.items() if v is not None})


def _cmd_run(args: argparse.Namespace) -> int:
    from daemon.cli.command_handlers import daemon_handlers  # noqa: PLC0415
    from daemon.cli.web_server import web_endpoints  # noqa: PLC0415
    from daemon.engine.runner import run_daemon  # noqa: PLC0415 - keeps `batchd validate` light

    settings = settings_from(args)
    configure(settings.log_level, settings.log_format)
    try:
        return run_daemon(settings, emulator=args.emulator, commands=daemon_handlers, more_endpoints=web_endpoints)
    except AlreadyRunningError as exc:  # still held after run's patience: a second daemon on one root
        print(shown_lines(redact(f"batchd: {exc}")), file=sys.stderr)
        return EXIT_USAGE


def _cmd_validate(args: argparse.Namespace) -> int:
    from daemon.cli.file_checks import check_files  # noqa: PLC0415

    return (
        EXIT_OK if check_files(settings_from(args), args.files, args.json, args.profile, args.format) else EXIT_FAILURE
    )


def _cmd_wrap(args: argparse.Namespace) -> int:
    from daemon.intake.bare_bodies import wrap_file, wrap_to  # noqa: PLC0415

    try:
        if args.output == "-":
            with open(args.file, "rb") as fh:
                done = wrap_to(fh, sys.stdout.buffer, args.url, args.id_prefix)
            sys.stdout.flush()
        else:
            done = wrap_file(args.file, Path(args.output), args.url, args.id_prefix)
    except OSError as exc:
        print(printable(f"batchd: {args.file}: {exc.strerror}"), file=sys.stderr)
        return EXIT_FAILURE
    where = "standard output" if args.output == "-" else args.output
    what = f"wrapped {done.wrapped} request(s) for {done.url}" if done.wrapped else "wrapped nothing"
    print(printable(f"{what}, kept {done.kept} Batch API request(s) as they were; wrote {where}"), file=sys.stderr)
    return EXIT_OK


def _open_store_readonly(settings: Settings) -> Any:
    from daemon.state.store import Store  # noqa: PLC0415

    db = settings.state / DB_NAME
    if not db.exists():
        raise DaemonError(
            f"no state database at {db}; has `batchd run` been started with this root? {root_hint(settings)}"
        )
    return Store(db, readonly=True)


def _cmd_status(args: argparse.Namespace) -> int:
    from daemon.cli.status import status_text, watch  # noqa: PLC0415
    from daemon.ops.signals import StopFlags, captured_signals  # noqa: PLC0415

    settings = settings_from(args)
    shown = {"wide": args.wide, "active": args.active, "since": args.since}
    if not args.watch:
        print(status_text(settings, as_json=args.json, **shown))
        return EXIT_OK
    flags = StopFlags()
    with captured_signals(flags):  # Ctrl-C (or SIGTERM) ends the watch cleanly, exit 0
        tty = sys.stdout.isatty()
        watch(
            lambda: status_text(settings, as_json=args.json, indent=None, **shown),
            flags.stop,
            args.interval,
            sys.stdout,
            clear=tty and not args.json,
            header=not args.json,
        )
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    from daemon.cli.cancel import cancel_job  # noqa: PLC0415
    from daemon.cli.command_sender import send_or_act  # noqa: PLC0415

    settings = settings_from(args)
    configure(settings.log_level, settings.log_format)
    return send_or_act(settings, "cancel", args.name, {}, args.timeout, lambda: cancel_job(settings, args.name))


def _cmd_abandon(args: argparse.Namespace) -> int:
    from daemon.cli.abandon import abandon_job  # noqa: PLC0415
    from daemon.cli.command_sender import send_or_act  # noqa: PLC0415

    settings = settings_from(args)
    configure(settings.log_level, settings.log_format)
    return send_or_act(
        settings,
        "abandon",
        args.name,
        {"cancel": args.cancel},
        args.wait,
        lambda: abandon_job(settings, args.name, cancel=args.cancel, wait=args.wait),
    )


def _cmd_retry(args: argparse.Namespace) -> int:
    from daemon.cli.command_sender import send_or_act  # noqa: PLC0415

    settings = settings_from(args)
    if args.failed:
        return send_or_act(
            settings, "retry_failed", args.name, {}, args.timeout, lambda: _retry_failed(settings, args.name)
        )
    options = {"force": args.force}
    return send_or_act(
        settings, "retry", args.name, options, args.timeout, lambda: _retry(settings, args.name, args.force)
    )


def _retry(settings: Settings, name: str, force: bool) -> int:
    from daemon.cli.command_handlers import requeued_text  # noqa: PLC0415
    from daemon.cli.retry import requeue  # noqa: PLC0415

    print(requeued_text(requeue(settings, name, force=force)))
    return EXIT_OK


def _retry_failed(settings: Settings, name: str) -> int:
    from daemon.cli.command_handlers import rerun_text  # noqa: PLC0415
    from daemon.cli.retry_failed import rerun_failed  # noqa: PLC0415

    print(rerun_text(rerun_failed(settings, name)))
    return EXIT_OK


def _cmd_healthcheck(args: argparse.Namespace) -> int:
    from daemon.cli.healthcheck import check_health  # noqa: PLC0415

    store = _open_store_readonly(settings_from(args))
    try:
        healthy, message = check_health(store, args.max_age)
    finally:
        store.close()
    print(message)
    return EXIT_OK if healthy else EXIT_FAILURE


def _cmd_recover(args: argparse.Namespace) -> int:
    from contextlib import ExitStack  # noqa: PLC0415

    from daemon.cli.recover import recover_state  # noqa: PLC0415
    from daemon.engine.emulated_profiles import emulated_services  # noqa: PLC0415
    from daemon.engine.runner import emulated  # noqa: PLC0415
    from daemon.ops.unreachable_profiles import failure_reason  # noqa: PLC0415
    from daemon.providers import DEFAULT_PROFILE  # noqa: PLC0415
    from daemon.service.profile_services import connect_each_profile  # noqa: PLC0415

    settings = settings_from(args)
    configure(settings.log_level, settings.log_format)
    with ExitStack() as stack:
        if args.emulator:  # every profile on the emulator `run --emulator` gives it, with the state it kept
            settings = stack.enter_context(emulated(settings))
            remote = emulated_services(settings, stack)
            stack.callback(remote.close)
            done = recover_state(settings, remote, args.since_days)
        else:  # every configured profile's service is searched
            profiles = {DEFAULT_PROFILE: settings.default_profile} | dict(settings.providers)
            services, missing = connect_each_profile(profiles, settings.request_timeout)
            stack.callback(services.close)
            keyless = {name: failure_reason(profiles[name], exc) for name, exc in missing.items()}
            done = recover_state(settings, services, args.since_days, keyless)
    print("\n".join(done.lines()))
    if done.unreachable:
        return EXIT_PROFILE_UNSEARCHED
    return EXIT_FAILURE if done.left else EXIT_OK


def _cmd_emulator(args: argparse.Namespace) -> int:
    from daemon.emulator.cli import run_emulator_command  # noqa: PLC0415
    from daemon.ops.signals import StopFlags, captured_signals  # noqa: PLC0415

    flags = StopFlags()
    with captured_signals(flags):
        return int(run_emulator_command(args, flags.stop))


def _cmd_completion(args: argparse.Namespace) -> int:
    from daemon.cli.completion import completion_script  # noqa: PLC0415

    print(completion_script(build_parser(), args.shell), end="")
    return EXIT_OK


def _cmd_help(args: argparse.Namespace) -> int:
    from daemon.cli.help_topics import topic_text  # noqa: PLC0415

    text = topic_text(args.topic, build_parser())
    if text is None:
        print(printable(f"batchd: no help topic {args.topic!r}; `batchd help` lists them"), file=sys.stderr)
        return EXIT_USAGE
    print(text)
    return EXIT_OK
