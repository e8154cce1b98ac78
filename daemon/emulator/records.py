"""In-memory records of stored files and batches, and their JSON representation on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# Timestamp fields of the Batch object, in the order the API documents them.
BATCH_TIME_FIELDS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
BATCH_WINDOW_SECONDS = 86_400


@dataclass(slots=True)
class FileRecord:
    id: str
    seq: int
    filename: str
    purpose: str
    size: int
    created_at: int
    expires_at: int | None
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class RequestRef:
    """Where one input request lives, so output can be generated without keeping bodies in memory."""

    custom_id: str
    line: int
    offset: int
    length: int
    tokens: int


@dataclass(slots=True)
class InputPlan:
    """The validated input of a batch and everything decided about it up front (deterministically)."""

    model: str
    requests: list[RequestRef]
    # Indices into `requests` in the order they "finish" (and appear in the output files).
    order: list[int]
    # failing[i]: the request at output position i gets an HTTP error line.
    failing: list[bool]
    # fail_prefix[k]: how many of the first k requests in `order` fail.
    fail_prefix: list[int]
    # How many requests finish before the window closes (fewer than all for `expire` models).
    target: int
    tokens: int


@dataclass(slots=True)
class BatchRecord:
    id: str
    seq: int
    created: float
    endpoint: str
    input_file_id: str
    # Kept so the input can still be read after the client deletes the file mid-batch.
    input_path: Path
    completion_window: str
    metadata: dict[str, str] | None
    output_expires_after: int | None
    status: str = "validating"
    times: dict[str, float] = field(default_factory=dict)
    plan: InputPlan | None = None
    errors: list[dict[str, Any]] | None = None
    model: str | None = None
    completed: int = 0
    failed: int = 0
    processed_at_cancel: int | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def total(self) -> int:
        return len(self.plan.requests) if self.plan is not None else 0

    def to_json(self) -> dict[str, Any]:
        created_at = int(self.created)
        body: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": list(self.errors)} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": created_at,
            "expires_at": created_at + BATCH_WINDOW_SECONDS,
        }
        for name in BATCH_TIME_FIELDS:
            moment = self.times.get(name)
            body[name] = int(moment) if moment is not None else None
        body["request_counts"] = {"total": self.total, "completed": self.completed, "failed": self.failed}
        body["usage"] = self._usage_json()
        body["metadata"] = dict(self.metadata) if self.metadata is not None else None
        return body

    def _usage_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }
