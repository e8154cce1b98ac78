"""Shared helpers for the emulator tests: request lines, upload, polling, download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
from openai.types import Batch, FileObject

from tests.support import FakeClock, wait_until

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def body_for(endpoint: str, model: str, index: int) -> dict[str, Any]:
    if endpoint == "/v1/embeddings":
        return {"model": model, "input": f"text number {index}"}
    if endpoint == "/v1/responses":
        return {"model": model, "input": f"question {index}"}
    if endpoint == "/v1/completions":
        return {"model": model, "prompt": f"prompt {index}"}
    if endpoint == "/v1/moderations":
        return {"model": model, "input": f"moderate {index}"}
    return {"model": model, "messages": [{"role": "user", "content": f"question {index}"}]}


def request_lines(
    count: int, endpoint: str = "/v1/chat/completions", model: str = "gpt-test", prefix: str = "req"
) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"{prefix}-{index}", "method": "POST", "url": endpoint, "body": body_for(endpoint, model, index)}
        for index in range(count)
    ]


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def upload(client: openai.OpenAI, path: Path, content: bytes, name: str = "input.jsonl", **kwargs: Any) -> FileObject:
    path.write_bytes(content)
    with path.open("rb") as handle:
        return client.files.create(file=(name, handle, "application/jsonl"), purpose="batch", **kwargs)


def submit(
    client: openai.OpenAI, tmp_path: Path, lines: list[dict[str, Any]], endpoint: str = "/v1/chat/completions"
) -> Batch:
    uploaded = upload(client, tmp_path / "input.jsonl", jsonl(lines))
    return client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]


def wait_terminal(client: openai.OpenAI, batch_id: str, timeout: float = 5.0) -> Batch:
    def finished() -> Batch | None:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in TERMINAL else None

    return wait_until(finished, timeout, f"batch {batch_id} to finish", every=0.01)  # type: ignore[no-any-return]


def download(client: openai.OpenAI, file_id: str) -> bytes:
    with client.files.with_streaming_response.content(file_id) as response:
        return b"".join(response.iter_bytes(4096))


def download_lines(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [orjson.loads(line) for line in download(client, file_id).splitlines()]


def run_to_end(client: openai.OpenAI, clock: FakeClock, batch_id: str) -> Batch:
    """With the STEPPED manual clock: move past every status and read the final batch."""
    clock.advance(10.0)
    return client.batches.retrieve(batch_id)
