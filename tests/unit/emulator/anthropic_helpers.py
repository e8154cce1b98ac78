"""Helpers for the anthropic flavour's tests: request lists, an SDK client, waiting for a batch to end."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from daemon.emulator import EmulatorServer
from tests.support import wait_until

MODEL = "claude-test"


def message_requests(count: int, model: str = MODEL, prefix: str = "req", text: str = "question") -> list[Any]:
    return [
        {
            "custom_id": f"{prefix}-{index}",
            "params": {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": f"{text} {index}"}]},
        }
        for index in range(count)
    ]


def anthropic_client(server: EmulatorServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0)


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 5.0) -> MessageBatch:
    def ended() -> MessageBatch | None:
        batch = client.messages.batches.retrieve(batch_id)
        return batch if batch.processing_status == "ended" else None

    return wait_until(ended, timeout, f"message batch {batch_id} to end", every=0.01)  # type: ignore[no-any-return]


def results_by_id(client: anthropic.Anthropic, batch_id: str) -> dict[str, MessageBatchIndividualResponse]:
    results = list(client.messages.batches.results(batch_id))
    by_id = {line.custom_id: line for line in results}
    assert len(by_id) == len(results), "a custom_id appears twice in the results"
    return by_id
