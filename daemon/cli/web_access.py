"""Who may press the web page's buttons: whoever logs in with the web token.

Logging in sets a session cookie (HttpOnly, so no script reads it; SameSite=Strict, so no other site's
page sends it) and gives the session a CSRF token that every form carries and every POST must match.
Sessions live in memory only: a restart logs everybody out, and nothing of them reaches the state.
The token is read like the API key (a systemd credential, a file named by BATCHD_WEB_TOKEN_FILE, or
BATCHD_WEB_TOKEN), on each login, so a changed file takes effect at once.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from daemon.errors import CredentialError
from daemon.logs import get_logger
from daemon.service.credentials import KeySource

log = get_logger(__name__)
COOKIE = "batchd_session"
SESSION_SECONDS = 12 * 3600.0
MAX_SESSIONS = 64  # the oldest is forgotten first: a flood of logins cannot grow memory
FAILED_LOGINS = 10  # wrong tokens allowed per LOCKOUT_SECONDS before logins are refused for that long
LOCKOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self, token: KeySource | None, lifetime: float = SESSION_SECONDS) -> None:
        self.token = token
        self.lifetime = lifetime
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._failures: list[float] = []  # monotonic times of recent wrong tokens

    @property
    def enabled(self) -> bool:
        """Buttons exist only when a web token is configured."""
        return self.token is not None

    def locked_out(self) -> bool:
        """Too many wrong tokens lately: guessing is slowed to a few tries a minute."""
        now = time.monotonic()
        with self._lock:
            self._failures = [t for t in self._failures if t > now - LOCKOUT_SECONDS]
            return len(self._failures) >= FAILED_LOGINS

    def login(self, given: str) -> Session | None:
        """A new session when ``given`` is the token, else None."""
        if self.token is None or not given or self.locked_out():
            return None
        try:
            expected = self.token.read()
        except CredentialError as exc:
            log.error("web_token_unreadable", error=str(exc))
            return None
        if not hmac.compare_digest(given.encode(), expected.encode()):
            with self._lock:
                self._failures.append(time.monotonic())
            return None
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(24), time.monotonic() + self.lifetime)
        with self._lock:
            while len(self._sessions) >= MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._sessions[session.id] = session
        return session

    def find(self, cookie_header: str | None) -> Session | None:
        """The live session named by the request's cookie, if any."""
        if self.token is None or not cookie_header:
            return None
        try:
            jar = SimpleCookie(cookie_header)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        if morsel is None:
            return None
        with self._lock:
            session = self._sessions.get(morsel.value)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[session.id]
                return None
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)


def csrf_matches(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def set_cookie(session: Session) -> tuple[str, str]:
    lifetime = int(session.expires - time.monotonic())
    return ("Set-Cookie", f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={lifetime}")


def clear_cookie() -> tuple[str, str]:
    return ("Set-Cookie", f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
