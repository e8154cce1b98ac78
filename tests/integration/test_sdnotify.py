"""sd_notify against a real AF_UNIX datagram socket, as systemd would listen on it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ops.sd_notify import Notifier, socket_address, watchdog_seconds


@pytest.fixture(name="listener")
def listener_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket with $NOTIFY_SOCKET pointing at it."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5.0)  # a missing datagram fails the test instead of hanging it
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def test_each_message_is_one_exact_datagram(listener: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.status("watching /data/pending_upload; 2 open jobs")
    assert notifier.watchdog()
    assert notifier.stopping()
    received = [listener.recv(4096) for _ in range(4)]
    assert received == [b"READY=1", b"STATUS=watching /data/pending_upload; 2 open jobs", b"WATCHDOG=1", b"STOPPING=1"]


def test_status_cannot_smuggle_a_second_field(listener: socket.socket) -> None:
    Notifier().status("line one\nREADY=1")
    assert listener.recv(4096) == b"STATUS=line one READY=1"


def test_several_fields_go_in_one_datagram(listener: socket.socket) -> None:
    Notifier().notify("READY=1", "STATUS=up")
    assert listener.recv(4096) == b"READY=1\nSTATUS=up"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"batchd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert Notifier().ready()
        assert sock.recv(4096) == b"READY=1"


def test_does_nothing_at_all_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("no socket may be opened without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", no_socket)
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()


def test_a_send_error_is_swallowed(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.enabled
    assert not notifier.ready()  # ENOENT, reported by the return value and one log line, never raised
    assert not notifier.watchdog()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("relative/path", None),
        ("@", None),
        ("vsock:2:1234", None),
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@/org/freedesktop/systemd1/notify/123", "\0/org/freedesktop/systemd1/notify/123"),
    ],
)
def test_socket_address(value: str, expected: str | None) -> None:
    assert socket_address(value) == expected


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", "", 30.0),
        ("30000000", "4242", 30.0),
        ("30000000", "4243", None),
        ("500000", "4242", 0.5),
        ("", "", None),
        ("0", "", None),
        ("-5", "", None),
        ("soon", "", None),
    ],
)
def test_watchdog_seconds(usec: str, pid: str, expected: float | None) -> None:
    assert watchdog_seconds(usec, pid, own_pid=4242) == expected


def test_watchdog_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier().watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    monkeypatch.delenv("WATCHDOG_PID")
    assert Notifier().watchdog_interval() is None
