"""Helpers for tests against the anthropic flavour: request lists, an SDK client, waiting for a batch to
end, and what the service received and ran (per custom_id, to count duplicates and re-runs)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anthropic
import orjson
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


def sent_requests(server: EmulatorServer) -> list[dict[str, Any]]:
    """Every request (`{"custom_id", "params"}`) of every batch the service accepted, batch by batch in
    creation order (deleted batches are gone, vanished ones are still here)."""
    requests: list[dict[str, Any]] = []
    for batch in server.message_batches.batches():
        with batch.plan.input_path.open("rb") as stored:
            requests.extend(orjson.loads(line) for line in stored)
    return requests


def executed_requests(server: EmulatorServer) -> Counter[str]:
    """How many times the service ran each custom_id (ended `succeeded` or `errored`, the outcomes that
    are paid for), over all ended batches whose results are still there; a count above 1 is a re-run."""
    runs: Counter[str] = Counter()
    for batch in server.message_batches.batches():
        if batch.results_path is None or not batch.results_path.exists():
            continue
        with batch.results_path.open("rb") as results:
            for raw in results:
                line = orjson.loads(raw)
                if line["result"]["type"] in ("succeeded", "errored"):
                    runs[line["custom_id"]] += 1
    return runs
