"""What batchd knows of a service's batches and files: small frozen dataclasses of its own.

These cross the service seam (``batch_service.BatchService``) instead of any SDK type, so the rest
of the daemon reads the same objects whichever service ran the batch. A part's batch is stored as
``BatchInfo.to_json`` in ``parts.batch_json``; its field names are the OpenAI API's (bar ``errors``,
a plain list here), so rows written before the seam (the SDK's ``Batch`` dumped to JSON) read back
with ``from_json`` as they are, and SQL that picks ``$.request_counts.completed`` keeps working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from daemon.state.rows import Part

# The times a batch records as it moves on (Unix seconds, None until reached); ``created_at`` aside.
BATCH_STAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "expires_at",
    "cancelling_at",
    "cancelled_at",
)


@dataclass(frozen=True)
class RequestCounts:
    completed: int
    failed: int
    total: int


@dataclass(frozen=True)
class BatchError:
    """Why a batch (or one of its input lines) was refused, as the service put it."""

    code: str | None
    line: int | None
    message: str | None
    param: str | None


@dataclass(frozen=True)
class BatchUsage:
    """Tokens the whole batch used, as the service counts them (batches created since 2025-09)."""

    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int

    def as_dict(self) -> dict[str, Any]:
        """The API's shape: summary.json reports it, and ``batchd status`` reads it from the state."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class BatchInfo:
    """A batch as last seen on the service. File ids are None when there is no such file."""

    id: str
    status: str
    created_at: int
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    endpoint: str | None = None
    model: str | None = None
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    expires_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts | None = None
    metadata: Mapping[str, str] | None = None
    errors: tuple[BatchError, ...] = ()
    usage: BatchUsage | None = None

    def stamp(self, name: str) -> int | None:
        """The ``{name}`` time (e.g. ``stamp("finalizing")``), None if not reached or not a stamp."""
        value = getattr(self, f"{name}_at", None) if f"{name}_at" in BATCH_STAMPS else None
        return value if isinstance(value, int) else None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["metadata"] = dict(self.metadata) if self.metadata is not None else None
        data["usage"] = self.usage.as_dict() if self.usage else None
        return orjson.dumps(data).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> BatchInfo:
        """Read what ``to_json`` wrote, or a batch in the API's JSON shape (rows of earlier versions)."""
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a stored batch is not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchInfo:
        """A batch from its JSON fields, under the API's names. The values were checked when the
        batch was received; absent optional fields read as None."""
        counts = data.get("request_counts")
        meta = data.get("metadata")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            created_at=int(data["created_at"]),
            **{name: data.get(name) or None for name in ("input_file_id", "output_file_id", "error_file_id")},
            endpoint=data.get("endpoint"),
            model=data.get("model"),
            **{name: data.get(name) for name in BATCH_STAMPS},
            request_counts=RequestCounts(counts["completed"], counts["failed"], counts["total"]) if counts else None,
            metadata=dict(meta) if isinstance(meta, Mapping) else None,
            errors=tuple(
                BatchError(e.get("code"), e.get("line"), e.get("message"), e.get("param")) for e in _errors(data)
            ),
            usage=_usage(data.get("usage")),
        )


def _errors(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Our own JSON holds a list; the API's (and earlier rows) an object ``{"data": [...]}``."""
    errors = data.get("errors")
    if isinstance(errors, Mapping):
        errors = errors.get("data")
    return list(errors or [])


def _usage(usage: object) -> BatchUsage | None:
    if not isinstance(usage, Mapping):
        return None
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0
    return BatchUsage(usage["input_tokens"], cached, usage["output_tokens"], reasoning, usage["total_tokens"])


@dataclass(frozen=True)
class FileInfo:
    """A file uploaded to the service."""

    id: str
    filename: str
    created_at: int


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook delivery: its event type, and the batch it names (None if no valid id)."""

    type: str | None
    batch_id: str | None


def part_batch(part: Part) -> BatchInfo | None:
    """The part's batch as last stored, or None before it had one."""
    return BatchInfo.from_json(part.batch_json) if part.batch_json else None
