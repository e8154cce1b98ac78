"""The web page's buttons: cancel, abandon, retry and retry-failed for one job, as commands for the
daemon (ops/command_queue.py), exactly as `batchd cancel` and the others send them. Only with a web
token configured, only for a logged-in session, only with the session's CSRF token, and only from a
page of this origin. Every attempt, allowed or refused, is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from daemon.cli.web_access import Session, Sessions, csrf_matches
from daemon.cli.web_layout import esc, url_part
from daemon.config import Settings
from daemon.http_messages import Request
from daemon.logs import get_logger
from daemon.ops.command_queue import CommandError, request_command
from daemon.state.command_queries import Command
from daemon.state.rows import Job
from daemon.state.states import INPUT_KIND, OPEN_JOB_STATES, JobState

log = get_logger(__name__)
MAX_FIELDS = 10


@dataclass(frozen=True)
class Button:
    kind: str  # the command's kind
    label: str
    danger: bool
    options: tuple[tuple[str, bool], ...] = ()


CANCEL = Button("cancel", "cancel its batches", danger=True)
ABANDON = Button("abandon", "abandon (cancel and end it)", danger=True, options=(("cancel", True),))
RETRY = Button("retry", "retry the input", danger=False)
RETRY_FAILED = Button("retry_failed", "retry its failed requests", danger=False)
BUTTONS = {b.kind: b for b in (CANCEL, ABANDON, RETRY, RETRY_FAILED)}


class ActionRefusedError(Exception):
    """A POST that must not act: the status to answer and what to tell the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def buttons_for(job: Job, failed_requests: int) -> list[Button]:
    """What may be asked of ``job`` in its state (the daemon checks again when it acts)."""
    if job.kind != INPUT_KIND:
        return []
    if job.state in OPEN_JOB_STATES:
        return [] if job.abandoned else [CANCEL, ABANDON] if not job.cancel_requested else [ABANDON]
    if job.state in (JobState.FAILED, JobState.REJECTED):
        return [RETRY]
    return [RETRY_FAILED] if failed_requests else []


def form_fields(request: Request) -> dict[str, str]:
    text = request.body.decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(text, max_num_fields=MAX_FIELDS).items()}


def same_origin(request: Request) -> bool:
    """A browser names the page a form was sent from: it must be this one (a missing Origin is let
    through: old browsers omit it, and the SameSite cookie and the CSRF token still guard)."""
    origin = request.headers.get("Origin")
    host = request.headers.get("Host")
    return origin is None or (host is not None and origin in (f"http://{host}", f"https://{host}"))


def checked_session(request: Request, sessions: Sessions, session: Session | None) -> Session:
    """The session a button's POST acts for, or ActionRefusedError saying why not."""
    if not sessions.enabled:
        raise ActionRefusedError(403, "This page has no buttons: no web token is configured.")
    if not same_origin(request):
        raise ActionRefusedError(403, "Refused: the form was not sent from this page.")
    if session is None:
        raise ActionRefusedError(403, "Log in with the web token first.")
    if not csrf_matches(session, form_fields(request).get("csrf", "")):
        raise ActionRefusedError(403, "Refused: the form is stale or forged; reload the page and press again.")
    return session


def ask(settings: Settings, job: Job, kind: str, client: str) -> str:
    """Leave the command for the daemon; its id."""
    button = BUTTONS.get(kind)
    if button is None:
        raise ActionRefusedError(404, f"There is no {kind} button.")
    try:
        command_id = request_command(settings.root, kind, job.id, f"web page ({client})", dict(button.options))
    except CommandError as exc:
        log.error("web_command_not_sent", kind=kind, job_id=job.id, client=client, error=str(exc))
        raise ActionRefusedError(503, str(exc)) from None
    log.info("web_command_requested", kind=kind, job_id=job.id, command_id=command_id, client=client)
    return command_id


def buttons_html(job: Job, buttons: list[Button], session: Session | None, sessions: Sessions) -> str:
    if not sessions.enabled:
        return ""
    if session is None:
        target = f"/login?next=/jobs/{url_part(job.id)}"
        return f'<p class="actions"><a href="{esc(target)}" id="login-link">log in to cancel, retry or abandon</a></p>'
    forms = "".join(
        f'<form method="post" action="/jobs/{url_part(job.id)}/{b.kind}">'
        f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'
        f'<button type="submit" name="action" value="{b.kind}"{" class=danger" if b.danger else ""}>'
        f"{esc(b.label)}</button></form>"
        for b in buttons
    )
    return f'<div class="actions" id="actions">{forms or "<span class=mute>nothing to do for this job</span>"}</div>'


def commands_html(commands: list[Command]) -> str:
    if not commands:
        return ""
    rows = "".join(
        f'<tr data-command="{esc(c.id)}"><td>{esc(c.kind)}</td><td>{esc(c.requested_by)}</td>'
        f'<td class="command-state">{esc(c.state)}</td><td class="why">{_lines(c.result)}</td></tr>'
        for c in commands
    )
    return (
        '<h2>Commands</h2><table id="commands"><thead><tr><th>command</th><th>asked by</th><th>state</th>'
        f"<th>outcome</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _lines(result: str | None) -> str:
    """An outcome of several lines (a retry's move and its kept report) as lines, not run together."""
    return "<br>".join(esc(line) for line in (result or "").splitlines())
