"""Requests parsed only once complete and within the caps; the WSGI bridge serves Prometheus' own output."""

from __future__ import annotations

import gzip
from http import HTTPStatus

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest, make_wsgi_app

from daemon.http_messages import RefusedRequestError, Request, Response, parse_request, render
from daemon.wsgi_bridge import wsgi_handler

CAPS = (1024, 100)  # header bytes, body bytes


def test_a_request_is_parsed_only_once_complete() -> None:
    whole = b"POST /hook?x=1 HTTP/1.1\r\nContent-Length: 5\r\nWebhook-Id: msg_1\r\n\r\nhello"
    for cut in (10, whole.index(b"\r\n\r\n"), len(whole) - 1):
        assert parse_request(whole[:cut], "127.0.0.1", *CAPS) is None
    request = parse_request(whole, "127.0.0.1", *CAPS)
    assert request is not None
    assert (request.method, request.target, request.body) == ("POST", "/hook?x=1", b"hello")
    assert request.headers["webhook-id"] == "msg_1"
    bare = parse_request(b"GET /metrics HTTP/1.0\n\n", "127.0.0.1", *CAPS)  # bare LF, as http.server took
    assert bare is not None and (bare.method, bare.body) == ("GET", b"")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", HTTPStatus.REQUEST_ENTITY_TOO_LARGE),  # announced
        (b"GET / HTTP/1.1\r\nX-Big: " + b"z" * 1100, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),  # unfinished
        (b"GET / HTTP/1.1\r\nX-Big: " + b"z" * 1100 + b"\r\n\r\n", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (b"hello there\r\n\r\n", HTTPStatus.BAD_REQUEST),
    ],
)
def test_requests_over_the_caps_or_malformed_are_refused(data: bytes, status: HTTPStatus) -> None:
    with pytest.raises(RefusedRequestError) as refused:
        parse_request(data, "127.0.0.1", *CAPS)
    assert refused.value.status == status


def test_a_reply_always_has_its_length_and_closes() -> None:
    reply = render(Response(200, b"{}", [("Content-Type", "application/json"), ("Content-Length", "99")]))
    head, body = reply.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: application/json",
        b"Content-Length: 2",
        b"Connection: close",
    ]
    assert body == b"{}"
    assert render(Response(405, b"no"), head_only=True).endswith(b"\r\n\r\n")


def test_the_bridge_serves_prometheus_output_unchanged() -> None:
    registry = CollectorRegistry()
    Counter("batchd_example", "An example.", registry=registry).inc(3)
    handle = wsgi_handler(make_wsgi_app(registry), "127.0.0.1", 9464)
    request = parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.1", *CAPS)
    assert request is not None
    plain = handle(request)
    assert (plain.status, plain.body) == (200, generate_latest(registry))
    zipped_request = Request("GET", "/metrics", request.headers, b"", "127.0.0.1")
    zipped_request.headers["Accept-Encoding"] = "gzip"
    zipped = handle(zipped_request)
    assert ("Content-Encoding", "gzip") in zipped.headers
    assert gzip.decompress(zipped.body) == generate_latest(registry)
    assert handle(Request("POST", "/metrics", request.headers, b"", "127.0.0.1")).status == 405
