"""The create body read as it arrives (anthropic_body.py): the same requests however the bytes are cut."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.emulator import anthropic_body
from daemon.emulator.anthropic_body import body_requests
from daemon.emulator.anthropic_requests import write_requests
from daemon.emulator.errors import ApiError

REQUESTS: list[Any] = [
    {
        "custom_id": "a",
        "params": {"model": "m", "max_tokens": 12345, "messages": [{"role": "user", "content": "hé ✓"}]},
    },
    {
        "custom_id": "b",
        "params": {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": 'q "x" \\ ]}'}]},
    },
    7,
    -1.5e3,
    "text",
    None,
]


def reader(data: bytes, size: int | None = None) -> Callable[[int], bytes]:
    stream = io.BytesIO(data)
    return lambda wanted: stream.read(size or wanted)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, None])
@pytest.mark.parametrize("indent", [None, 2])
def test_the_requests_come_out_whole_however_the_body_is_cut(piece: int | None, indent: int | None) -> None:
    body = json.dumps({"requests": REQUESTS}, ensure_ascii=False, indent=indent).encode()

    assert list(body_requests(reader(body, piece))) == REQUESTS


def test_a_value_bigger_than_a_chunk_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_body, "CHUNK", 16)
    big = [{"custom_id": "big", "params": {"text": "x" * 1000}}, 12345678901234567890]
    body = json.dumps({"requests": big}).encode()

    assert list(body_requests(reader(body))) == big


def test_an_empty_list_yields_nothing() -> None:
    assert list(body_requests(reader(b' { "requests" : [ ] } '))) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"[]", "not valid JSON"),
        (b"{}", "requests: Field required"),
        (b'{"requests": 5}', "valid list"),
        (b'{"model": "x", "requests": []}', "model: Extra inputs"),
        (b'{"requests": [], "requests": []}', "requests: Extra inputs"),
        (b'{"requests": [1 2]}', "not valid JSON"),
        (b'{"requests": [1,]}', "not valid JSON"),
        (b'{"requests": [1]} x', "not valid JSON"),
        (b'{"requests": [Infinity]}', "not valid JSON"),
        (b'{"requests": ["\xff"]}', "UTF-8"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        list(body_requests(reader(body, 3)))

    assert caught.value.status == 400
    assert message in caught.value.message


def test_requests_are_yielded_before_the_body_has_arrived() -> None:
    """Memory stays bounded: the first request is parsed long before the last byte is read."""
    body = json.dumps({"requests": [{"n": index} for index in range(10_000)]}).encode()
    stream = io.BytesIO(body)

    first = next(body_requests(lambda size: stream.read(min(size, 4096))))

    assert first == {"n": 0}
    assert stream.tell() < len(body) // 10


def peak_memory(count: int, tmp_path: Path) -> int:
    """Peak memory while `count` requests of 256 KiB each are read from a body and stored."""
    filler = "x" * (1 << 18)
    requests = [
        {"custom_id": f"r{n}", "params": {"model": "m", "max_tokens": 1, "system": filler}} for n in range(count)
    ]
    stream = io.BytesIO(json.dumps({"requests": requests}).encode())
    del requests
    tracemalloc.start()
    try:
        plan = write_requests(body_requests(stream.read), tmp_path / f"requests-{count}.jsonl", seed=0, error_rate=0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(plan.requests) == count
    return peak


def test_memory_does_not_grow_with_the_size_of_the_body(tmp_path: Path) -> None:
    """Parsed whole, 64 requests of 256 KiB would take 16 MiB more than 8 of them."""
    small, big = peak_memory(8, tmp_path), peak_memory(64, tmp_path)

    assert big < small + (2 << 20), f"{small / (1 << 20):.1f} MiB for 2 MiB, {big / (1 << 20):.1f} MiB for 16 MiB"
