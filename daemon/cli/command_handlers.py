"""How the running daemon carries out the operators' commands: the same code as the commands run
directly (cancel.py, abandon.py, retry.py, retry_failed.py), with what they say collected as the
command's outcome instead of printed. The daemon's own store and services are used: no key is needed
by whoever asked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from daemon.cli.abandon import request_abandon
from daemon.cli.cancel import cancel_one
from daemon.cli.retry import Requeued, RequeueError, requeue
from daemon.cli.retry_failed import Rerun, rerun_failed
from daemon.config import Settings
from daemon.display import printable
from daemon.ops.command_desk import CommandRefusedError, Handlers
from daemon.service.profile_services import ProfileServices
from daemon.state.command_queries import Command
from daemon.state.rows import Job
from daemon.state.states import INPUT_KIND, OPEN_JOB_STATES
from daemon.state.store import Store

T = TypeVar("T")


def daemon_handlers(settings: Settings, store: Store, services: ProfileServices) -> Handlers:
    """The handlers by command kind (see ops/command_desk.py)."""
    return {
        "cancel": partial(_cancel, store, services),
        "abandon": partial(_abandon, store, services),
        "retry": partial(_retry, settings),
        "retry_failed": partial(_retry_failed, settings),
    }


def _open_jobs(store: Store, command: Command, kinds: tuple[str, ...] | None = None) -> list[Job]:
    jobs = [j for j in store.jobs(OPEN_JOB_STATES) if command.target in (j.source_name, j.id)]
    jobs = [j for j in jobs if kinds is None or j.kind in kinds]
    if not jobs:
        raise CommandRefusedError(f"no open job for {printable(command.target)!r}; `batchd status` lists them")
    return jobs


def _cancel(store: Store, services: ProfileServices, command: Command) -> str:
    lines: list[str] = []
    refused = [
        job for job in _open_jobs(store, command) if not cancel_one(store, services.of(job.profile), job, lines.append)
    ]
    text = "\n".join(lines) or f"{printable(command.target)}: cancel recorded"
    if refused:  # the service refused: nothing was recorded, the job goes on
        raise CommandRefusedError(text)
    return text


def _abandon(store: Store, services: ProfileServices, command: Command) -> str:
    lines: list[str] = []
    cancel = bool(command.options.get("cancel"))
    for job in _open_jobs(store, command, (INPUT_KIND,)):
        request_abandon(store, services.of(job.profile), job, cancel=cancel, say=lines.append)
    # The daemon's next pass ends it: the worker running this rings the main loop when it returns.
    return "\n".join(lines)


def _retry(settings: Settings, command: Command) -> str:
    force = bool(command.options.get("force"))
    return requeued_text(_refusing(partial(requeue, settings, command.target, force=force)))


def _retry_failed(settings: Settings, command: Command) -> str:
    return rerun_text(_refusing(partial(rerun_failed, settings, command.target)))


def requeued_text(done: Requeued) -> str:
    """What `batchd retry NAME` says once done (run directly or by the daemon)."""
    lines = [printable(f"moved {done.source} to {done.dest}; batchd picks it up as a new job")]
    if done.report is not None:
        lines.append(printable(f"the old report is kept as {done.report}"))
    return "\n".join(lines)


def rerun_text(done: Rerun) -> str:
    """What `batchd retry NAME --failed` says once done."""
    lines = [printable(f"dropped {done.requests} failed or not-run request(s) of job {done.job_id} as {done.dest}")]
    if done.maybe_ran:
        lines.append(
            f"note: {done.maybe_ran} of them may have run and been paid for without a result coming back "
            "(result_missing, batch_lost); they will run and be paid for again"
        )
    return "\n".join(lines)


def _refusing(step: Callable[[], T]) -> T:
    """A retry that must not be done (not in failed/, still failing validation ...) is refused, not failed."""
    try:
        return step()
    except RequeueError as exc:
        raise CommandRefusedError(str(exc)) from None
