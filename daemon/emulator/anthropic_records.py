"""A Message Batch in memory and its JSON on the wire (times as RFC 3339 text, as Anthropic sends them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.emulator.anthropic_requests import MessagePlan
from daemon.emulator.anthropic_results import ResultCounts

BATCHES_PATH = "/v1/messages/batches"


def rfc3339(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class MessageBatchRecord:
    id: str
    seq: int
    created: float
    expires: float
    plan: MessagePlan
    status: str = "in_progress"  # in_progress -> (canceling ->) ended
    cancel_initiated: float | None = None
    ended: float | None = None
    archived: float | None = None  # when the results stopped being available
    # Requests (in plan order) that ran before the cancel; the rest end `canceled`.
    processed_at_cancel: int | None = None
    counts: ResultCounts | None = None
    results_path: Path | None = None

    @property
    def size(self) -> int:
        return len(self.plan.requests)

    def to_json(self, root_url: str) -> dict[str, Any]:
        """`root_url`: scheme and host the client reached us at, for `results_url`."""
        ended = self.status == "ended"
        counts = self.counts.to_json() if self.counts is not None else ResultCounts().to_json(self.size)
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": counts,
            "ended_at": rfc3339(self.ended),
            "created_at": rfc3339(self.created),
            "expires_at": rfc3339(self.expires),
            "archived_at": rfc3339(self.archived),
            "cancel_initiated_at": rfc3339(self.cancel_initiated),
            "results_url": f"{root_url}{BATCHES_PATH}/{self.id}/results" if ended else None,
        }
