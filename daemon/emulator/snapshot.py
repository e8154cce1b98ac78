"""The emulator's files and batches kept across restarts: one JSON document, replaced atomically on change.

A demo stopped with Ctrl-C and started again must find the batches it created, or the daemon would
poll ids the new emulator never heard of. Times are wall-clock seconds, so a batch that was
in_progress goes on where the clock says it is (or has long finished) when the emulator comes back.

A batch's plan (output order, failing requests) is not stored: it is decided from the input file
and the seed alone, so it is worked out again from the input's bytes, which stay in the data folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from daemon.emulator.records import BatchRecord, FileRecord

SNAPSHOT_NAME = "state.json"
T = TypeVar("T")
VERSION = 1
_BATCH_FIELDS = (
    "id",
    "seq",
    "created",
    "endpoint",
    "input_file_id",
    "completion_window",
    "metadata",
    "output_expires_after",
    "status",
    "times",
    "errors",
    "model",
    "completed",
    "failed",
    "processed_at_cancel",
    "output_file_id",
    "error_file_id",
    "input_tokens",
    "output_tokens",
)
_FILE_FIELDS = ("id", "seq", "filename", "purpose", "size", "created_at", "expires_at")


@dataclass(slots=True)
class Snapshot:
    files: list[FileRecord] = field(default_factory=list)
    deleted_seqs: dict[str, int] = field(default_factory=dict)  # deleted files still work as cursors
    batches: list[tuple[BatchRecord, bool]] = field(default_factory=list)  # (batch, whether it had a plan)


def save(folder: Path, files: list[FileRecord], seqs: dict[str, int], batches: list[BatchRecord]) -> None:
    """Write the snapshot beside the files, replacing the old one in one rename."""
    document = {
        "version": VERSION,
        "files": [{name: getattr(record, name) for name in _FILE_FIELDS} for record in files],
        "seqs": seqs,
        "batches": [_batch_json(batch) for batch in batches],
    }
    write_document(folder, SNAPSHOT_NAME, document)


def write_document(folder: Path, name: str, document: dict[str, Any]) -> None:
    """Replace ``folder/name`` with ``document`` in one rename (the anthropic flavour's snapshot uses it too)."""
    temporary = folder / f".{name}.{os.getpid()}.part"  # two processes never share a half-written one
    temporary.write_text(json.dumps(document), encoding="utf-8")
    os.replace(temporary, folder / name)


def _batch_json(batch: BatchRecord) -> dict[str, Any]:
    data = {name: getattr(batch, name) for name in _BATCH_FIELDS}
    data["input_path"] = batch.input_path.name  # the folder may move with the root
    data["planned"] = batch.plan is not None
    return data


def load(folder: Path) -> Snapshot:
    """The snapshot in ``folder``; an empty one if there is none (a first start)."""
    return read_document(folder, SNAPSHOT_NAME, lambda document: _read(document, folder), Snapshot, "incoming-*.part")


def read_document(
    folder: Path, name: str, parse: Callable[[dict[str, Any]], T], empty: Callable[[], T], *staged: str
) -> T:
    """``folder/name`` parsed, or ``empty()`` on a first start; uploads cut short (``staged`` globs) are removed.

    A document that cannot be parsed is named with the way out (the anthropic flavour's snapshot uses it too).
    """
    for leftover in [*(p for g in staged for p in folder.glob(g)), *folder.glob(f".{name}.*.part")]:  # cut short
        with contextlib.suppress(OSError):
            leftover.unlink()
    path = folder / name
    if not path.exists():
        return empty()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != VERSION:
            raise ValueError(f"written by another emulator version ({document.get('version')!r})")
        return parse(document)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); move the folder away to start empty") from None


def _read(document: dict[str, Any], folder: Path) -> Snapshot:
    files = [FileRecord(**item, path=folder / item["id"]) for item in document["files"]]
    batches = [_batch(item, folder) for item in document["batches"]]
    return Snapshot(files, {key: int(value) for key, value in document["seqs"].items()}, batches)


def _batch(item: dict[str, Any], folder: Path) -> tuple[BatchRecord, bool]:
    values = {name: item[name] for name in _BATCH_FIELDS}
    return BatchRecord(**values, input_path=folder / item["input_path"]), bool(item["planned"])
