"""One HTTP listener with limits, for every endpoint batchd serves (metrics, webhooks, any later one).

Sockets cost no thread while a request arrives: one thread reads every connection without
blocking and hands a request to a small pool of handler threads only once it is complete. So
thousands of idle or slow clients cost file descriptors up to a cap and nothing else:

- at most ``max_connections`` connections are open; at the cap, the oldest one still sending its
  request is closed to make room (a flood of idle connections cannot lock out a scraper that sends
  its request at once), and when every open connection is being answered the new one is refused;
- each request has a total deadline from accept to the end of the reply, not a per-read timeout:
  a client sending a byte every few seconds is cut off at the deadline;
- the request line and headers are capped (431), and so is the body (413, refused before reading).

One request per connection (every reply says ``Connection: close``), as the servers it replaces did.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from daemon.http_messages import RefusedRequestError, Request, Response, parse_request, render
from daemon.logs import get_logger

log = get_logger(__name__)
MAX_CONNECTIONS = 64  # scrapers and webhook senders open a few at a time; bounds memory and descriptors
HANDLER_THREADS = 2  # requests answered at once (scrapes and deliveries are quick); the rest wait, complete
REQUEST_DEADLINE = 10.0  # seconds from accept to the end of the reply
MAX_HEADER_BYTES = 16 << 10  # request line and headers together
MAX_BODY_BYTES = 64 << 10  # the default; an endpoint may ask for more
SHED_LOG_EVERY = 60.0  # seconds: a flood logs one line a minute, not one per connection
READ_CHUNK = 64 << 10
ACCEPT_PAUSE = 1.0  # seconds without accepting after the process ran out of descriptors
ACCEPTS_PER_WAKE = 64  # bounded work per wake-up, so reading keeps pace with accepting
BACKLOG = 1024  # connections the kernel may hold before accept (no descriptor, no thread): rides out bursts


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Limits:
    max_connections: int = MAX_CONNECTIONS
    handler_threads: int = HANDLER_THREADS
    deadline: float = REQUEST_DEADLINE
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES


@dataclass
class _Connection:
    sock: socket.socket
    client: str
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class HttpListener:
    """Serves ``handler`` on ``address``:``port`` within ``limits``; threads start in ``start()``."""

    def __init__(self, name: str, address: str, port: int, handler: Handler, limits: Limits = Limits()) -> None:
        self.name = name
        self.address = address
        self.requested_port = port
        self.handler = handler
        self.limits = limits
        self._caps = (limits.max_header_bytes, limits.max_body_bytes)
        self._sock: socket.socket | None = None
        self._reading: dict[int, _Connection] = {}  # insertion order is accept order: oldest first
        self._answering: dict[int, socket.socket] = {}
        self._lock = threading.Lock()
        self._ready: queue.Queue[tuple[_Connection, Request] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake: tuple[socket.socket, socket.socket] | None = None  # wakes the reader to stop
        self._shed = 0
        self._accept_paused_until = 0.0  # monotonic time; 0: accepting
        self._shed_logged_at = -SHED_LOG_EVERY

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        """Bind (raising OSError when the port will not open) and start the reader and the pool."""
        family = socket.getaddrinfo(self.address, self.requested_port, type=socket.SOCK_STREAM)[0][0]
        self._sock = socket.create_server((self.address, self.requested_port), family=family, backlog=BACKLOG)
        self._sock.setblocking(False)
        self._wake = socket.socketpair()
        self._threads = [threading.Thread(target=self._read_loop, name=f"batchd-{self.name}", daemon=True)]
        for n in range(self.limits.handler_threads):
            answerer = threading.Thread(target=self._answer_loop, name=f"batchd-{self.name}-{n}", daemon=True)
            self._threads.append(answerer)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Release the port at once, drop every connection and join the threads."""
        self._stopping.set()
        if self._wake is not None:
            self._wake[1].send(b"x")
        for _ in range(self.limits.handler_threads):
            self._ready.put(None)
        with self._lock:
            for sock in self._answering.values():
                _shut(sock)  # a handler blocked writing to a client that does not read wakes up
        for thread in self._threads:
            thread.join(timeout=5.0)
        for end in self._wake or ():
            end.close()
        self._wake = None

    # The reader -------------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._sock is not None
        assert self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ, None)
            selector.register(self._wake[0], selectors.EVENT_READ, None)
            while not self._stopping.is_set():
                for key, _ in selector.select(self._next_timeout()):
                    try:
                        self._on_ready(selector, key.fileobj)  # type: ignore[arg-type]
                    except Exception:  # one bad connection must not end the listener
                        log.exception("listener_read_failed", listener=self.name)
                self._expire(selector)
                self._resume_accepting(selector)
            for conn in list(self._reading.values()):
                self._drop(selector, conn)
            self._sock.close()

    def _next_timeout(self) -> float | None:
        """Sleep until the oldest connection's deadline, or until woken when there is none."""
        oldest = next(iter(self._reading.values()), None)
        wake_at = [t for t in (self._accept_paused_until, oldest and oldest.deadline) if t]
        return max(0.0, min(wake_at) - time.monotonic()) if wake_at else None

    def _resume_accepting(self, selector: selectors.BaseSelector) -> None:
        if self._accept_paused_until and self._accept_paused_until <= time.monotonic():
            assert self._sock is not None
            selector.register(self._sock, selectors.EVENT_READ, None)
            self._accept_paused_until = 0.0

    def _on_ready(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        if sock is self._sock:
            self._accept(selector)
        elif (conn := self._reading.get(sock.fileno())) is not None:  # not the wake-up socket, nor one
            self._receive(selector, conn)  # closed to make room earlier in this same wake-up

    def _accept(self, selector: selectors.BaseSelector) -> None:
        assert self._sock is not None
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: pause accepting, or the loop would spin
                log.warning("listener_accept_failed", listener=self.name, error=str(exc))
                selector.unregister(self._sock)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            self._admit(selector, sock, str(address[0]))

    def _admit(self, selector: selectors.BaseSelector, sock: socket.socket, client: str) -> None:
        sock.setblocking(False)
        if len(self._reading) + len(self._answering) >= self.limits.max_connections:
            self._note_shed()
            if not self._reading:  # every open connection is being answered: refuse the newcomer
                _refuse(sock, HTTPStatus.SERVICE_UNAVAILABLE)
                return
            self._drop(selector, next(iter(self._reading.values())))
        conn = _Connection(sock, client, time.monotonic() + self.limits.deadline)
        self._reading[sock.fileno()] = conn
        selector.register(sock, selectors.EVENT_READ, None)

    def _receive(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        try:
            chunk = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(selector, conn)
            return
        conn.data += chunk
        try:
            request = parse_request(bytes(conn.data), conn.client, *self._caps)
        except RefusedRequestError as refusal:
            self._unregister(selector, conn)
            _refuse(conn.sock, refusal.status)
            return
        if request is not None:
            self._unregister(selector, conn)
            with self._lock:
                self._answering[conn.sock.fileno()] = conn.sock
            self._ready.put((conn, request))

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self._reading:
            oldest = next(iter(self._reading.values()))
            if oldest.deadline > now:
                return
            self._drop(selector, oldest)

    def _unregister(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        selector.unregister(conn.sock)
        del self._reading[conn.sock.fileno()]

    def _drop(self, selector: selectors.BaseSelector, conn: _Connection) -> None:
        self._unregister(selector, conn)
        conn.sock.close()

    def _note_shed(self) -> None:
        self._shed += 1
        now = time.monotonic()
        if now - self._shed_logged_at >= SHED_LOG_EVERY:
            cap = self.limits.max_connections
            log.warning("listener_connections_shed", listener=self.name, count=self._shed, cap=cap)
            self._shed, self._shed_logged_at = 0, now

    # The handler pool -------------------------------------------------------------------------

    def _answer_loop(self) -> None:
        while (item := self._ready.get()) is not None:
            conn, request = item
            try:
                if not self._stopping.is_set() and conn.deadline > time.monotonic():
                    self._answer(conn, request)
            finally:
                with self._lock:
                    self._answering.pop(conn.sock.fileno(), None)
                conn.sock.close()

    def _answer(self, conn: _Connection, request: Request) -> None:
        try:
            response = self.handler(request)
        except Exception:
            log.exception("listener_handler_failed", listener=self.name, method=request.method)
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR)
        # The handler's own time is not the client's fault: it still gets a moment to read the reply.
        conn.sock.settimeout(max(conn.deadline - time.monotonic(), 1.0))
        with contextlib.suppress(OSError):  # the client left or stopped reading: nothing to tell anybody
            conn.sock.sendall(render(response, head_only=request.method == "HEAD"))


def _refuse(sock: socket.socket, status: HTTPStatus) -> None:
    """One try at a short error reply (never blocking the reader), then close."""
    with contextlib.suppress(OSError):
        sock.send(render(Response(status)))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(READ_CHUNK)  # what already came: closing on unread data would reset the reply away
    sock.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
