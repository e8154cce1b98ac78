"""The file registry: metadata in memory, bytes on disk under the data directory.

Not thread-safe by itself; the Store serialises access with its lock.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from pathlib import Path

from daemon.emulator.errors import not_found
from daemon.emulator.ids import new_id
from daemon.emulator.records import FileRecord


class FileTable:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._records: dict[str, FileRecord] = {}
        # Sequence numbers outlive deletion so a deleted file still works as a pagination cursor.
        self._seqs: dict[str, int] = {}
        self._counter = itertools.count(1)

    def staging_path(self) -> Path:
        """A unique path for bytes still being received or generated (renamed once complete)."""
        return self._root / f"incoming-{uuid.uuid4().hex}.part"

    def add(self, staged: Path, filename: str, purpose: str, created_at: int, expires_at: int | None) -> FileRecord:
        file_id = new_id("file-")
        path = self._root / file_id
        staged.replace(path)
        record = FileRecord(
            id=file_id,
            seq=next(self._counter),
            filename=filename,
            purpose=purpose,
            size=path.stat().st_size,
            created_at=created_at,
            expires_at=expires_at,
            path=path,
        )
        self._records[file_id] = record
        self._seqs[file_id] = record.seq
        return record

    def restore(self, records: list[FileRecord], seqs: dict[str, int]) -> None:
        """Take back what a snapshot kept (see snapshot.py); numbering goes on after it."""
        self._records = {record.id: record for record in records}
        self._seqs = dict(seqs) | {record.id: record.seq for record in records}
        self._counter = itertools.count(max(self._seqs.values(), default=0) + 1)

    def sequences(self) -> dict[str, int]:
        return dict(self._seqs)

    def find(self, file_id: str) -> FileRecord | None:
        return self._records.get(file_id)

    def get(self, file_id: str) -> FileRecord:
        record = self._records.get(file_id)
        if record is None:
            raise not_found(f"No such File object: {file_id}", param="id")
        return record

    def remove(self, file_id: str, keep_bytes: bool) -> None:
        """Forget a file; `keep_bytes` leaves it on disk for a batch that still has to read it."""
        record = self.get(file_id)
        del self._records[file_id]
        if not keep_bytes:
            with contextlib.suppress(FileNotFoundError):
                record.path.unlink()

    def records(self) -> list[FileRecord]:
        """All live files, oldest first."""
        return sorted(self._records.values(), key=lambda record: record.seq)

    def cursor_seq(self, file_id: str) -> int | None:
        return self._seqs.get(file_id)
