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
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlencode

from daemon.cli.web_access import Session, Sessions
from daemon.cli.web_chart import chart
from daemon.cli.web_facts import daemon_facts, ended_batches, job_detail, job_list
from daemon.cli.web_layout import document, esc, html_response, live_page, live_part, new_nonce, url_part
from daemon.cli.web_views import STATE_CHOICES, daemon_panel, filter_form, job_fragment, jobs_table
from daemon.config import Settings
from daemon.http_endpoints import Endpoint, port_error
from daemon.http_listener import HttpListener
from daemon.http_messages import Request, Response
from daemon.logs import get_logger
from daemon.service.credentials import find_web_token
from daemon.state.folders import DB_NAME
from daemon.state.store import Store

if TYPE_CHECKING:
    from daemon.engine.main_loop import Engine

log = get_logger(__name__)
Query = dict[str, str]
Piece = tuple[str | None, str]  # a part of a view: (its id when the script refreshes it, its HTML)


class WebPage:
    """Answers one request; knows nothing of sockets."""

    def __init__(self, settings: Settings, store: Store, sessions: Sessions, started_at: float) -> None:
        self.settings = settings
        self.store = store
        self.sessions = sessions
        self.started_at = started_at

    def handle(self, request: Request) -> Response:
        path, _, raw_query = request.target.partition("?")
        query = {k: v[0] for k, v in parse_qs(raw_query, max_num_fields=20).items()}
        session = self.sessions.find(request.headers.get("Cookie"))
        if request.method in ("GET", "HEAD"):
            return self._get(unquote(path), query, session)
        if request.method == "POST":
            return self._post(request, unquote(path), session)
        return self._plain(405, "Method not allowed", "Use GET to look and the page's buttons to act.")

    def _get(self, path: str, query: Query, session: Session | None) -> Response:
        if path == "/":
            return self._overview(query, session)
        if path.startswith("/jobs/") and path.count("/") == 2:
            return self._job(path.removeprefix("/jobs/"), query, session)
        if path == "/login":
            return self._login_page(session)
        return self._plain(404, "Not found", "No such page: start again from the job list.")

    def _post(self, request: Request, path: str, session: Session | None) -> Response:
        return self._plain(404, "Not found", "Nothing to post here.")

    # views ------------------------------------------------------------------------------------

    def _overview(self, query: Query, session: Session | None) -> Response:
        state = query.get("state", "")
        state = state if state in STATE_CHOICES else ""
        search = query.get("q", "")[:200]
        now = time.time()
        jobs = job_list(self.store, self.settings, now, state, search)
        pieces: list[Piece] = [
            ("daemon", daemon_panel(daemon_facts(self.store, self.settings, self.started_at, now), now)),
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
        pieces: list[Piece] = [
            (None, f'<h1 id="job-name">{esc(detail.job.source_name)}</h1>'),
            ("job", job_fragment(detail, now)),
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

    def _login_page(self, session: Session | None, problem: str = "", status: int = 200) -> Response:
        return self._plain(404, "Not found", "No such page: start again from the job list.")

    def _plain(self, status: int, title: str, message: str) -> Response:
        nonce = new_nonce()
        body = (
            f'<main><h1>{esc(title)}</h1><p class="notice error">{esc(message)}</p>'
            '<p><a href="/">job list</a></p></main>'
        )
        return html_response(document(title, body, nonce), nonce, status)


class WebServer:
    """The page on its own port, on the bounded listener, with a read-only view of the state."""

    def __init__(self, settings: Settings, sessions: Sessions) -> None:
        assert settings.web_port is not None
        self.settings = settings
        self.sessions = sessions
        self._listener: HttpListener | None = None
        self._store: Store | None = None

    @property
    def port(self) -> int:
        assert self._listener is not None
        return self._listener.port

    def start(self) -> None:
        address, port = self.settings.web_address, self.settings.web_port or 0
        self._store = Store(self.settings.state / DB_NAME, readonly=True)
        page = WebPage(self.settings, self._store, self.sessions, time.time())
        listener = HttpListener("web", address, port, page.handle)
        try:
            listener.start()
        except OSError as exc:
            self._store.close()
            raise port_error("web_port", port, address, exc) from None
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
    return [WebServer(engine.settings, Sessions(find_web_token()))]
