"""Anthropic's Message Batch objects, checked and read as batchd's own ``BatchInfo``.

A Message Batch says ``processing_status`` (``in_progress``, ``canceling``, ``ended``) and counts
``processing``, ``succeeded``, ``errored``, ``canceled`` and ``expired`` requests; its times are
RFC 3339 strings. The rest of the daemon reads OpenAI's statuses, so an ended batch is read as
``cancelled`` if a cancel was asked for, ``expired`` if some requests expired (their lines say so
and ``resubmit_unfinished`` sends them again), else ``completed``. Succeeded requests count as
completed, errored ones as failed. ``results_url`` stands in the output file id: that is where
the results are downloaded from.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from daemon.errors import MalformedReplyError
from daemon.service.batch_info import BatchInfo, RequestCounts

STATUSES = {"in_progress": "in_progress", "canceling": "cancelling"}
COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")
ENDPOINT = "/v1/messages"


def batch_from_reply(data: object, call: str) -> BatchInfo:
    """The batch in a reply (or a listed one), or MalformedReplyError naming the field."""
    if not isinstance(data, dict):
        raise MalformedReplyError(call, "the batch is not a JSON object")
    batch_id, status = data.get("id"), data.get("processing_status")
    if not isinstance(batch_id, str) or not batch_id:
        raise MalformedReplyError(call, "id is missing or not a string")
    if status not in ("in_progress", "canceling", "ended"):
        raise MalformedReplyError(call, f"processing_status {str(status)[:40]!r} is not one Anthropic documents")
    counts = _counts(data.get("request_counts"), call)
    created = _time(data.get("created_at"), call, "created_at", required=True)
    assert created is not None
    ended = _time(data.get("ended_at"), call, "ended_at")
    cancel_asked = _time(data.get("cancel_initiated_at"), call, "cancel_initiated_at")
    shown = STATUSES.get(str(status)) or _ended_status(counts, cancel_asked)
    results = data.get("results_url")
    if shown not in STATUSES.values() and not isinstance(results, str):
        raise MalformedReplyError(call, "an ended batch has no results_url")
    return BatchInfo(
        id=batch_id,
        status=shown,
        created_at=created,
        output_file_id=results if isinstance(results, str) and results else None,
        endpoint=ENDPOINT,
        in_progress_at=created,
        expires_at=_time(data.get("expires_at"), call, "expires_at"),
        cancelling_at=cancel_asked,
        completed_at=ended if shown == "completed" else None,
        expired_at=ended if shown == "expired" else None,
        cancelled_at=ended if shown == "cancelled" else None,
        request_counts=RequestCounts(counts["succeeded"], counts["errored"], sum(counts.values())),
    )


def _ended_status(counts: dict[str, int], cancel_asked: int | None) -> str:
    if cancel_asked is not None:
        return "cancelled"
    return "expired" if counts["expired"] else "completed"


def _counts(value: object, call: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise MalformedReplyError(call, "request_counts is missing or not an object")
    counts: dict[str, int] = {}
    for name in COUNTS:
        count = value.get(name, 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise MalformedReplyError(call, f"request_counts.{name} is not a whole number")
        counts[name] = count
    return counts


def _time(value: Any, call: str, name: str, *, required: bool = False) -> int | None:
    """An RFC 3339 time (or Unix seconds, as some servers send) as Unix seconds."""
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
        except ValueError:
            pass
    raise MalformedReplyError(call, f"{name} is not a time")


def page_from_reply(data: object, call: str) -> tuple[list[object], bool, str | None]:
    """(batches, has_more, last_id) of one page of GET /v1/messages/batches."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise MalformedReplyError(call, "the page has no data list")
    last = data.get("last_id")
    return list(data["data"]), data.get("has_more") is True, last if isinstance(last, str) and last else None
