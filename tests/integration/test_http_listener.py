"""The bounded HTTP listener: thousands of idle and slow clients cost no threads, a slow-loris
client is cut off at the request deadline, oversize requests are refused, stop frees the port."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from daemon.http_listener import MAX_CONNECTIONS, HttpListener, Limits
from daemon.http_messages import Request, Response
from tests.integration.test_webhooks import SECRET, deliver, event
from tests.support import Harness, request_file, scrape, value, wait_until

FLOOD = 2000  # connections held against each listener
PARTIAL = b"POST /webhooks HTTP/1.1\r\nHost: x\r\nX-Slow: "  # a request that never ends


def threads() -> int:
    """Threads of this process as the OS counts them."""
    return len(os.listdir("/proc/self/task"))


@contextlib.contextmanager
def descriptors(wanted: int) -> Iterator[int]:
    """Raise the soft descriptor limit towards ``wanted`` for the test; yield what it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, allowed), hard))
    try:
        yield allowed
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(port: int, count: int) -> list[socket.socket]:
    """``count`` connections: every other one sends the start of a request, the rest nothing."""
    held = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(PARTIAL)
        sock.setblocking(False)  # so a look at it never waits
        held.append(sock)
    return held


def still_open(held: list[socket.socket]) -> int:
    """How many of ``held`` the server has not closed."""
    count = 0
    for sock in held:
        try:
            sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def close_all(held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()


def test_thousands_of_idle_and_slow_connections_cost_no_threads(
    harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    harness = harness_factory(metrics_port=0, webhook_port=0).start()
    assert harness.engine is not None and harness.engine.metrics is not None and harness.engine.webhooks is not None
    metrics, webhooks = harness.engine.metrics.port, harness.engine.webhooks.port
    before = threads()
    with descriptors(2 * FLOOD + 1024) as allowed:
        count = min(FLOOD, (allowed - 1024) // 2)
        assert count == FLOOD, f"only {allowed} descriptors allowed"
        held = [*connect(metrics, count), *connect(webhooks, count)]
        try:
            during = threads()
            # Excess connections are closed at once, not kept: at most the cap stays open per listener.
            wait_until(lambda: still_open(held) <= 2 * MAX_CONNECTIONS, 10, "the listeners to shed connections")
            # Meanwhile the endpoints answer and the daemon works.
            assert deliver(webhooks, event("batch_nobody_knows")) == (200, {"status": "unknown"})
            harness.drop("busy.jsonl", request_file(3))
            harness.wait_job("busy.jsonl")
            assert value(scrape(metrics), "batchd_files_claimed_total") == 1
            after = threads()
        finally:
            close_all(held)
    # The emulator (in this process) may start a thread or two per SDK connection: the slack is for it.
    # One thread per connection would be thousands.
    assert max(during, after) <= before + 8, (before, during, after)


def echo(request: Request) -> Response:
    return Response(200, request.body)


@pytest.fixture(name="short_deadline")
def short_deadline_fixture() -> Iterator[HttpListener]:
    listener = HttpListener("test", "127.0.0.1", 0, echo, Limits(deadline=1.0, max_body_bytes=1000))
    listener.start()
    yield listener
    listener.stop()


def test_a_slow_loris_client_is_cut_off_at_the_deadline(short_deadline: HttpListener) -> None:
    sock = socket.create_connection(("127.0.0.1", short_deadline.port), timeout=5)
    sock.setblocking(False)  # so a look at it never waits
    started = time.monotonic()
    sent = 0

    def trickled_until_cut_off() -> bool:
        """One more byte of a header line that never ends; True once the server has hung up."""
        nonlocal sent
        try:
            sock.sendall(b"x" if sent else PARTIAL)
            sent += 1
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    with sock:
        wait_until(trickled_until_cut_off, 5, "the listener to cut the slow client off", every=0.1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed <= 2.5, elapsed
    assert sent >= 5  # it kept sending all along: a per-read timeout would never have fired


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before it has read it all
            sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def test_oversize_bodies_and_headers_are_refused(short_deadline: HttpListener) -> None:
    port = short_deadline.port
    assert raw_exchange(port, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").endswith(b"\r\n\r\nhello")
    announced = b"POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"
    assert raw_exchange(port, announced).startswith(b"HTTP/1.1 413 ")
    assert raw_exchange(port, announced + b"y" * 1001).startswith(b"HTTP/1.1 413 ")
    huge_header = b"GET / HTTP/1.1\r\nX-Big: " + b"z" * (20 << 10) + b"\r\n\r\n"
    assert raw_exchange(port, huge_header).startswith(b"HTTP/1.1 431 ")
    assert raw_exchange(port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_when_every_connection_is_being_answered_a_new_one_is_refused() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(request: Request) -> Response:
        entered.release()
        release.wait(10)
        return Response(200, b"done")

    listener = HttpListener("test", "127.0.0.1", 0, slow, Limits(max_connections=2, handler_threads=2))
    listener.start()
    try:
        answers: list[bytes] = []
        busy = [
            threading.Thread(target=lambda: answers.append(raw_exchange(listener.port, b"GET / HTTP/1.1\r\n\r\n")))
            for _ in range(2)
        ]
        for thread in busy:
            thread.start()
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
        assert raw_exchange(listener.port, b"").startswith(b"HTTP/1.1 503 ")  # refused at once, unread
        release.set()
        for thread in busy:
            thread.join(5)
        assert [a.endswith(b"\r\n\r\ndone") for a in answers] == [True, True]
    finally:
        release.set()
        listener.stop()


def test_stop_frees_the_port_at_once_and_joins_its_threads() -> None:
    def own_threads() -> int:
        return sum(t.name.startswith("batchd-stopping") for t in threading.enumerate())

    listener = HttpListener("stopping", "127.0.0.1", 0, echo)
    listener.start()
    port = listener.port
    assert own_threads() == 1 + listener.limits.handler_threads
    idle = connect(port, 3)
    try:
        listener.stop()
        assert own_threads() == 0
        again = HttpListener("stopping", "127.0.0.1", port, echo)
        again.start()  # the same port, straight away
        again.stop()
    finally:
        close_all(idle)
