"""The emulator's batch-creation rate limit: N creates per window, then 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.support import FakeClock
from tests.unit.emulator.conftest import ServerFactory, make_client
from tests.unit.emulator.helpers import jsonl, request_lines, upload


def test_creates_beyond_the_limit_are_refused_until_the_oldest_leaves_the_window(
    make_server: ServerFactory, clock: FakeClock, tmp_path: Path
) -> None:
    server = make_server(clock=clock, create_limit=3, create_window=100.0)
    with make_client(server) as client:
        file_id = upload(client, tmp_path / "in.jsonl", jsonl(request_lines(2))).id

        def create() -> openai.types.Batch:
            return client.batches.create(
                input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
            )

        create()
        clock.advance(30.0)
        create()
        create()
        clock.advance(10.0)
        with pytest.raises(openai.RateLimitError) as refused:
            create()
        assert refused.value.status_code == 429
        assert refused.value.code == "rate_limit_exceeded"
        assert refused.value.response.headers["Retry-After"] == "60"  # the first create leaves at 100 s
        clock.advance(60.0)
        create()  # the first one has left the window
        with pytest.raises(openai.RateLimitError):
            create()  # the refused one did not count, the new one did: three in the window again
    assert len(server.batches()) == 4
    statuses = [c.status for c in server.calls.entries() if c.method == "POST" and c.route == "/v1/batches"]
    assert statuses == [200, 200, 200, 429, 200, 429]


def test_no_limit_by_default(client: openai.OpenAI, tmp_path: Path) -> None:
    file_id = upload(client, tmp_path / "in.jsonl", jsonl(request_lines(1))).id
    for _ in range(20):
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
