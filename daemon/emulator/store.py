"""Thread-safe registry of files and batches: the state behind every API route.

One lock guards everything. Batch transitions (including validating an input and writing the
output files) run under it on the thread that happens to read; that keeps the model simple and
is fast enough for inputs up to the API's 200 MB limit.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from daemon.emulator import snapshot
from daemon.emulator.creation_limit import CreationLimit
from daemon.emulator.errors import bad_request, not_found
from daemon.emulator.files import FileTable
from daemon.emulator.ids import new_id
from daemon.emulator.lifecycle import Lifecycle
from daemon.emulator.listing import cursor_page
from daemon.emulator.mishaps import Mishaps
from daemon.emulator.params import BatchParams, UploadParams
from daemon.emulator.records import BatchRecord, FileRecord
from daemon.emulator.settings import EmulatorSettings

MAX_BATCH_INPUT_BYTES = 200 * 1024 * 1024
DEFAULT_BATCH_FILE_EXPIRY_SECONDS = 30 * 86_400


class Store:
    def __init__(self, settings: EmulatorSettings, root: Path, clock: Callable[[], float]) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._files = FileTable(root)
        self.mishaps = Mishaps()
        self._lifecycle = Lifecycle(settings, self._files, self.mishaps)
        self._batches: dict[str, BatchRecord] = {}
        # Batches not yet terminal: the only ones the lifecycle has to look at.
        self._active: dict[str, BatchRecord] = {}
        self._batch_seq = itertools.count(1)
        self._creations = CreationLimit(settings.create_limit, settings.create_window)
        self._file_limit = settings.file_limit
        self._root = root
        self._keep_state = settings.keep_state
        if self._keep_state:
            self._restore()

    def _restore(self) -> None:
        kept = snapshot.load(self._root)
        self._files.restore(kept.files, kept.deleted_seqs)
        for batch, planned in sorted(kept.batches, key=lambda item: item[0].seq):
            if planned:
                self._lifecycle.replan(batch)
            self._batches[batch.id] = batch
            if not batch.terminal:
                self._active[batch.id] = batch
        self._batch_seq = itertools.count(max((b.seq for b in self._batches.values()), default=0) + 1)

    def _persist(self) -> None:
        if self._keep_state:
            snapshot.save(self._root, self._files.records(), self._files.sequences(), list(self._batches.values()))

    def _advance(self) -> float:
        now = self._clock()
        before = [batch.status for batch in self._active.values()]
        self._lifecycle.advance(self._active, now)
        moved = before != [batch.status for batch in self._active.values()]
        for batch_id in [key for key, batch in self._active.items() if batch.terminal]:
            del self._active[batch_id]
        if moved:
            self._persist()
        return now

    # Files

    def staging_path(self) -> Path:
        return self._files.staging_path()

    def add_upload(self, staged: Path, filename: str, params: UploadParams) -> dict[str, Any]:
        with self._lock:
            self._check_file_room(params.purpose)
            created_at = int(self._clock())
            seconds = params.expires_after
            if seconds is None and params.purpose == "batch":
                seconds = DEFAULT_BATCH_FILE_EXPIRY_SECONDS  # the API's default for batch inputs
            expires_at = created_at + seconds if seconds is not None else None
            record = self._files.add(staged, filename, params.purpose, created_at, expires_at)
            self._persist()
            return record.to_json()

    def _check_file_room(self, purpose: str) -> None:
        """The service keeps only `file_limit` input files: one more is refused until one is deleted."""
        if self._file_limit is None or purpose != "batch":
            return
        held = sum(1 for record in self._files.records() if record.purpose == "batch")
        if held >= self._file_limit:
            message = (
                f"The maximum number of files ({self._file_limit}) for this resource has been reached. "
                "Please delete files and try again."
            )
            raise bad_request(message, param="file", code="quota_exceeded")

    def file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._files.get(file_id).to_json()

    def list_files(self, purpose: str | None, descending: bool, after: str | None, limit: int) -> dict[str, Any]:
        with self._lock:
            self._advance()
            records = [r for r in self._files.records() if purpose is None or r.purpose == purpose]
            rows = [(record.seq, record) for record in records]
            if descending:
                rows.reverse()
            after_seq = self._cursor(after, self._files.cursor_seq)
            return cursor_page(rows, after_seq, limit, descending, FileRecord.to_json)

    def delete_file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            path = self._files.get(file_id).path
            still_needed = any(batch.input_path == path for batch in self._active.values())
            self._files.remove(file_id, keep_bytes=still_needed)
            self._persist()
            return {"id": file_id, "object": "file", "deleted": True}

    def open_content(self, file_id: str) -> tuple[BinaryIO, int]:
        """An open handle and the size; the caller streams and closes it outside the lock."""
        with self._lock:
            self._advance()
            record = self._files.get(file_id)
            return record.path.open("rb"), record.size

    # Batches

    def create_batch(self, params: BatchParams) -> dict[str, Any]:
        with self._lock:
            now = self._advance()
            source = self._batch_input(params.input_file_id)
            self._creations.admit(now)
            batch = BatchRecord(
                id=new_id("batch_"),
                seq=next(self._batch_seq),
                created=now,
                endpoint=params.endpoint,
                input_file_id=source.id,
                input_path=source.path,
                completion_window=params.completion_window,
                metadata=params.metadata,
                output_expires_after=params.output_expires_after,
            )
            self._batches[batch.id] = batch
            self._active[batch.id] = batch
            self.mishaps.created(batch.id)
            self._advance()  # a zero validating time moves on at once
            self._persist()
            return batch.to_json()

    def _batch_input(self, file_id: str) -> FileRecord:
        source = self._files.find(file_id)
        if source is None:
            raise bad_request(f"No such File object: {file_id}", param="input_file_id")
        if source.purpose != "batch":
            message = f"File {file_id} has purpose '{source.purpose}'; batch input files must have purpose 'batch'."
            raise bad_request(message, param="input_file_id")
        if source.size > MAX_BATCH_INPUT_BYTES:
            raise bad_request(f"File {file_id} is larger than the 200 MB batch input limit.", param="input_file_id")
        return source

    def batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            self._advance()
            return self._batch(batch_id).to_json()

    def _batch(self, batch_id: str) -> BatchRecord:
        batch = self._batches.get(batch_id)
        if batch is None or self.mishaps.vanished(batch_id):
            raise not_found(f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def list_batches(self, after: str | None, limit: int) -> dict[str, Any]:
        with self._lock:
            self._advance()
            # Insertion order is creation order, so reversing gives newest first.
            rows = [(b.seq, b) for b in reversed(self._batches.values()) if not self.mishaps.vanished(b.id)]
            after_seq = self._cursor(after, self._batch_cursor)
            return cursor_page(rows, after_seq, limit, True, BatchRecord.to_json)

    def _batch_cursor(self, batch_id: str) -> int | None:
        batch = self._batches.get(batch_id)
        return batch.seq if batch is not None else None

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            now = self._advance()
            batch = self._batch(batch_id)
            self._lifecycle.cancel(batch, now)
            self._advance()  # a zero cancelling time finishes at once
            self._persist()
            return batch.to_json()

    @staticmethod
    def _cursor(after: str | None, lookup: Callable[[str], int | None]) -> int | None:
        if after is None:
            return None
        seq = lookup(after)
        if seq is None:
            raise bad_request(f"Invalid 'after': no object with id '{after}'.", param="after")
        return seq

    # Snapshots for assertions (copies, oldest first).

    def batches(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [batch.to_json() for batch in sorted(self._batches.values(), key=lambda b: b.seq)]

    def files(self) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [record.to_json() for record in self._files.records()]

    def file_bytes(self, file_id: str) -> bytes:
        handle, _ = self.open_content(file_id)
        with handle:
            return handle.read()
