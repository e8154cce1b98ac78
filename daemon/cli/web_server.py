"""The operator web page: the daemon, every job, one job, a chart; served by the daemon itself.

Off unless ``web_port`` is set; on 127.0.0.1 unless ``web_address`` says otherwise; on the same
bounded listener as the metrics (daemon/http_listener.py). It reads the state database through a
read-only connection of its own, so a page can never change the state nor wait on the engine's
writes; the buttons (only with a web token, see web_access.py) go through the command table.

Every page is complete as served (no JavaScript needed); where JavaScript runs, the live part of
the page fetches ``?fragment=1`` of the same address every few seconds and swaps it in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlencode

from daemon.cli.web_access import Session, Sessions, clear_cookie, set_cookie
from daemon.cli.web_actions import (
    ActionRefusedError,
    ask,
    buttons_for,
    buttons_html,
    checked_session,
    commands_html,
    form_fields,
    same_origin,
)
from daemon.cli.web_chart import chart
from daemon.cli.web_facts import daemon_facts, ended_batches, job_detail, job_list
from daemon.cli.web_hosts import AllowedHosts
from daemon.cli.web_layout import document, esc, html_response, live_page, live_part, new_nonce, url_part
from daemon.cli.web_views import STATE_CHOICES, daemon_panel, filter_form, job_fragment, jobs_table
from daemon.config import Settings
from daemon.http_endpoints import Endpoint, port_error
from daemon.http_listener import HttpListener
from daemon.http_messages import Request, Response
from daemon.logs import get_logger
from daemon.service.credentials import find_web_token
from daemon.state.folders import DB_NAME
from daemon.state.rows import Job
from daemon.state.store import Store

if TYPE_CHECKING:
    from daemon.engine.main_loop import Engine

log = get_logger(__name__)
MAX_QUERY_FIELDS = 20
MAX_HOSTS_LOGGED = 64  # refused Host names logged once each, so a rebinding page cannot flood the log
Query = dict[str, str]
Piece = tuple[str | None, str]  # a part of a view: (its id when the script refreshes it, its HTML)


class WebPage:
    """Answers one request; knows nothing of sockets."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        sessions: Sessions,
        started_at: float,
        emulators: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.started_at = started_at
        self.emulators = dict(emulators or {})
        self.hosts = AllowedHosts(settings.web_address, settings.web_host_name)  # its port once bound
        self._hosts_logged: set[str] = set()

    def handle(self, request: Request) -> Response:
        if not self.hosts.allows(request.headers.get("Host")):
            return self._misdirected(request)
        path, _, raw_query = request.target.partition("?")
        try:
            query = {k: v[0] for k, v in parse_qs(raw_query, max_num_fields=MAX_QUERY_FIELDS).items()}
            session = self.sessions.find(request.headers.get("Cookie"))
            if request.method in ("GET", "HEAD"):
                return self._get(unquote(path), query, session)
            if request.method == "POST":
                return self._post(request, unquote(path), session)
        except ValueError:  # more query or form fields than any page of ours sends
            return self._plain(400, "Bad request", "Too many fields in the address or the form.")
        return self._plain(405, "Method not allowed", "Use GET to look and the page's buttons to act.")

    def _misdirected(self, request: Request) -> Response:
        """A Host that is not this page's (a DNS-rebound name): a short text, nothing of the state."""
        host = str(request.headers.get("Host"))[:200]
        if host not in self._hosts_logged and len(self._hosts_logged) < MAX_HOSTS_LOGGED:
            self._hosts_logged.add(host)
            log.warning("web_host_refused", host=host, client=request.client)
        text = "This page answers only to its own address, localhost, or web_host_name if set.\n"
        return Response(HTTPStatus.MISDIRECTED_REQUEST, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])

    def _get(self, path: str, query: Query, session: Session | None) -> Response:
        if path == "/":
            return self._overview(query, session)
        if path.startswith("/jobs/") and path.count("/") == 2:
            return self._job(path.removeprefix("/jobs/"), query, session)
        if path == "/login":
            return self._login_page(session, target=_safe_next(query.get("next", "/")))
        return self._plain(404, "Not found", "No such page: start again from the job list.")

    def _post(self, request: Request, path: str, session: Session | None) -> Response:
        if path == "/login":
            return self._login(request)
        try:
            if path == "/logout":
                return self._logout(request, session)
            if path.startswith("/jobs/") and path.count("/") == 3:
                return self._act(request, *path.removeprefix("/jobs/").split("/"), session=session)
        except ActionRefusedError as refusal:
            log.warning("web_action_refused", path=path, client=request.client, reason=refusal.message)
            return self._plain(refusal.status, "Refused", refusal.message)
        return self._plain(404, "Not found", "Nothing to post here.")

    def _act(self, request: Request, job_id: str, kind: str, *, session: Session | None) -> Response:
        checked_session(request, self.sessions, session)
        job = self._input_job(job_id)
        if kind not in {b.kind for b in buttons_for(job, self._failed_requests(job))}:
            raise ActionRefusedError(409, f"{kind} is not possible for this job now ({job.state}).")
        command_id = ask(self.settings, job, kind, request.client)
        return _see_other(f"/jobs/{url_part(job.id)}?asked={url_part(command_id)}")

    def _input_job(self, job_id: str) -> Job:
        try:
            return self.store.job(job_id)
        except KeyError:
            raise ActionRefusedError(404, f"There is no job {job_id}.") from None

    def _failed_requests(self, job: Job) -> int:
        detail = job_detail(self.store, self.settings, job.id, time.time())
        return 0 if detail is None else detail.row["split"].failed + detail.row["split"].not_run

    def _login(self, request: Request) -> Response:
        fields = form_fields(request)
        target = _safe_next(fields.get("next", "/"))
        if not self.sessions.enabled:
            log.warning("web_login_refused", client=request.client, reason="no web token configured")
            return self._login_page(None)
        if not same_origin(request):
            log.warning("web_login_refused", client=request.client, reason="cross-origin form")
            return self._login_page(None, "Refused: the form was not sent from this page.", 403, target)
        if self.sessions.locked_out():
            log.warning("web_login_refused", client=request.client, reason="too many wrong tokens")
            return self._login_page(None, "Too many wrong tokens: wait a minute and try again.", 429, target)
        session = self.sessions.login(fields.get("token", ""))
        if session is None:
            log.warning("web_login_refused", client=request.client, reason="wrong token")
            return self._login_page(None, "That is not the web token.", 403, target)
        log.info("web_login", client=request.client)
        return _see_other(target, [set_cookie(session)])

    def _logout(self, request: Request, session: Session | None) -> Response:
        ended = checked_session(request, self.sessions, session)
        self.sessions.end(ended)
        log.info("web_logout", client=request.client)
        return _see_other("/", [clear_cookie()])

    # views ------------------------------------------------------------------------------------

    def _overview(self, query: Query, session: Session | None) -> Response:
        state = query.get("state", "")
        state = state if state in STATE_CHOICES else ""
        search = query.get("q", "")[:200]
        now = time.time()
        jobs = job_list(self.store, self.settings, now, state, search)
        pieces: list[Piece] = [
            (
                "daemon",
                daemon_panel(daemon_facts(self.store, self.settings, self.started_at, now, self.emulators), now),
            ),
            ("chart", f"<h2>Requests completed and cost</h2>{chart(ended_batches(self.store, self.settings), now)}"),
            (None, f"<h2>Jobs</h2>{filter_form(state, search)}"),
            ("job-list", jobs_table(jobs, now)),
        ]
        params = {k: v for k, v in (("state", state), ("q", search)) if v}
        return self._view("jobs", pieces, "/?" + urlencode({**params, "fragment": "1"}), query, session)

    def _job(self, job_id: str, query: Query, session: Session | None) -> Response:
        now = time.time()
        detail = job_detail(self.store, self.settings, job_id, now)
        if detail is None:
            return self._plain(404, "No such job", f"There is no job {job_id}: it may belong to another root.")
        split = detail.row["split"]
        buttons = buttons_for(detail.job, split.failed + split.not_run)
        asked = '<p class="notice" id="asked">Asked the daemon; its answer appears under Commands.</p>'
        commands = [c for c in self.store.recent_commands(200) if c.target in (detail.job.id, detail.job.source_name)]
        pieces: list[Piece] = [
            (None, f'<h1 id="job-name">{esc(detail.job.source_name)}</h1>'),
            (None, asked if "asked" in query else ""),
            # The buttons are live too: once the job ends, cancel goes and retry comes.
            (
                "job",
                buttons_html(detail.job, buttons, session, self.sessions)
                + job_fragment(detail, now, commands_html(commands)),
            ),
        ]
        return self._view(detail.job.source_name, pieces, f"/jobs/{url_part(job_id)}?fragment=1", query, session)

    def _view(self, title: str, pieces: list[Piece], src: str, query: Query, session: Session | None) -> Response:
        """The whole page, or (``?fragment=1``, for the script) its live parts alone."""
        nonce = new_nonce()
        if query.get("fragment") == "1":
            return html_response("".join(live_part(key, html) for key, html in pieces if key), nonce)
        body = "".join(live_part(key, html) if key else html for key, html in pieces)
        return html_response(document(title, live_page(body, src), nonce, header_right=self._who(session)), nonce)

    def _who(self, session: Session | None) -> str:
        if not self.sessions.enabled:
            return '<span class="mute">read-only (no web token configured)</span>'
        if session is None:
            return '<a href="/login">log in to act</a>'
        return (
            f'<form method="post" action="/logout"><input type="hidden" name="csrf" value="{esc(session.csrf)}">'
            '<button type="submit">log out</button></form>'
        )

    def _login_page(self, session: Session | None, problem: str = "", status: int = 200, target: str = "/") -> Response:
        if not self.sessions.enabled:
            return self._plain(404, "No login", "This page has no buttons: no web token is configured.")
        nonce = new_nonce()
        said = f'<p class="notice error" id="login-problem">{esc(problem)}</p>' if problem else ""
        already = '<p class="notice">You are logged in.</p>' if session is not None else ""
        body = (
            f'<main><h1>Log in</h1>{already}{said}<form method="post" action="/login" class="panel">'
            f'<input type="hidden" name="next" value="{esc(target)}">'
            '<p><label>web token <input type="password" name="token" autocomplete="current-password" required>'
            '</label> <button type="submit">log in</button></p><p class="mute">The token is the one set in '
            "BATCHD_WEB_TOKEN, the file named by BATCHD_WEB_TOKEN_FILE, or the systemd credential "
            "batchd-web-token.</p></form></main>"
        )
        return html_response(document("log in", body, nonce), nonce, status)

    def _plain(self, status: int, title: str, message: str) -> Response:
        nonce = new_nonce()
        body = (
            f'<main><h1>{esc(title)}</h1><p class="notice error">{esc(message)}</p>'
            '<p><a href="/">job list</a></p></main>'
        )
        return html_response(document(title, body, nonce), nonce, status)


def _see_other(target: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """After a POST: the browser loads ``target`` with a GET (a reload does not send the form again)."""
    return Response(303, b"", [("Location", target), ("Cache-Control", "no-store"), *(headers or [])])


def _safe_next(target: str) -> str:
    """Where to go after logging in: a path of this page only, never another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


class WebServer:
    """The page on its own port, on the bounded listener, with a read-only view of the state."""

    def __init__(self, settings: Settings, sessions: Sessions, emulators: Mapping[str, str] | None = None) -> None:
        assert settings.web_port is not None
        self.settings = settings
        self.sessions = sessions
        self.emulators = dict(emulators or {})  # profile -> the emulator it talks to (`run --emulator`)
        self._listener: HttpListener | None = None
        self._store: Store | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    def start(self) -> None:
        address, port = self.settings.web_address, self.settings.web_port or 0
        self._store = Store(self.settings.state / DB_NAME, readonly=True)
        page = WebPage(self.settings, self._store, self.sessions, time.time(), self.emulators)
        listener = HttpListener("web", address, port, page.handle)
        try:
            listener.start()
        except OSError as exc:
            self._store.close()
            raise port_error("web_port", port, address, exc) from None
        page.hosts.port = listener.port  # a Host naming another port is not this page
        self._listener = listener
        log.info("web_serving", address=address, port=self.port, buttons=self.sessions.enabled)

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._store is not None:
            self._store.close()
        self._listener, self._store = None, None


def web_endpoints(engine: Engine) -> list[Endpoint]:
    """The page when ``web_port`` is set (with buttons when a web token is configured), else nothing."""
    if engine.settings.web_port is None:
        return []
    return [WebServer(engine.settings, Sessions(find_web_token()), engine.services.emulators)]
