"""The anthropic flavour's Message Batches kept across restarts, through snapshot.py's atomic document.

A demo with an anthropic profile stopped with Ctrl-C must find its batches when started again, or the
daemon would poll ids the new emulator never heard of. A batch's plan (which requests fail, the result
order) is stored with it: the requests' bodies stay in their file in the data folder, only offsets are
kept; results already written stay there too. Times are wall-clock seconds, as in snapshot.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from daemon.emulator import snapshot
from daemon.emulator.anthropic_records import MessageBatchRecord
from daemon.emulator.anthropic_requests import MessagePlan, RequestError
from daemon.emulator.anthropic_results import ResultCounts
from daemon.emulator.records import RequestRef

SNAPSHOT_NAME = "message_batches.json"
_FIELDS = ("id", "seq", "created", "expires", "status", "cancel_initiated", "ended", "archived", "processed_at_cancel")


def save(folder: Path, batches: list[MessageBatchRecord]) -> None:
    """Write every batch beside its requests and results, replacing the old snapshot in one rename."""
    snapshot.write_document(
        folder, SNAPSHOT_NAME, {"version": snapshot.VERSION, "batches": [_json(b) for b in batches]}
    )


def _json(batch: MessageBatchRecord) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(batch, name) for name in _FIELDS}
    plan = batch.plan
    data["plan"] = {
        "input_path": plan.input_path.name,  # the folder may move with the root
        "requests": [dataclasses.astuple(ref) for ref in plan.requests],
        "order": plan.order,
        "errors": [None if error is None else [error.type, error.message] for error in plan.errors],
        "target": plan.target,
    }
    data["counts"] = None if batch.counts is None else dataclasses.asdict(batch.counts)
    data["results_path"] = None if batch.results_path is None else batch.results_path.name
    return data


def load(folder: Path) -> list[MessageBatchRecord]:
    """The batches kept in ``folder``, oldest first; none on a first start."""
    return snapshot.read_document(folder, SNAPSHOT_NAME, lambda document: _batches(document, folder), list)


def _batches(document: dict[str, Any], folder: Path) -> list[MessageBatchRecord]:
    return sorted((_batch(item, folder) for item in document["batches"]), key=lambda batch: batch.seq)


def _batch(item: dict[str, Any], folder: Path) -> MessageBatchRecord:
    plan = item["plan"]
    errors = [None if error is None else RequestError(*error) for error in plan["errors"]]
    requests = [RequestRef(*ref) for ref in plan["requests"]]
    kept_plan = MessagePlan(folder / plan["input_path"], requests, plan["order"], errors, int(plan["target"]))
    counts = None if item["counts"] is None else ResultCounts(**item["counts"])
    results = None if item["results_path"] is None else folder / item["results_path"]
    values = {name: item[name] for name in _FIELDS}
    return MessageBatchRecord(**values, plan=kept_plan, counts=counts, results_path=results)
