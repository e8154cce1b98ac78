"""The remote files to delete once their job's results are written (service/remote_cleanup.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from daemon.state.database import Database
from daemon.state.rows import RemoteFile, RemoteFileChanges
from daemon.state.states import TERMINAL_JOB_STATES


class RemoteFileQueries(Database):
    def add_remote_files(self, job_id: str, files: Iterable[tuple[str, str]], now: float) -> None:
        """Record (file id, role) pairs as pending; ids already recorded are left as they are."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO remote_files (file_id, job_id, role, state, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?)",
                [(file_id, job_id, role, now) for file_id, role in files],
            )

    def keep_remote_files(self, job_id: str, files: Iterable[tuple[str, str]], now: float) -> None:
        """Record (file id, role) pairs as kept: a person may need them, so hygiene never deletes them."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO remote_files (file_id, job_id, role, state, updated_at) VALUES (?, ?, ?, 'kept', ?) "
                "ON CONFLICT(file_id) DO UPDATE SET state = 'kept', updated_at = excluded.updated_at",
                [(file_id, job_id, role, now) for file_id, role in files],
            )

    def due_remote_files(self, now: float, limit: int = 100) -> list[RemoteFile]:
        """Pending deletions whose job has ended (its results are written), oldest due first."""
        ended = sorted(str(s) for s in TERMINAL_JOB_STATES)
        marks = ",".join("?" * len(ended))
        query = (
            "SELECT r.* FROM remote_files r JOIN jobs j ON j.id = r.job_id WHERE r.state = 'pending' "  # noqa: S608
            f"AND r.next_action_at <= ? AND j.state IN ({marks}) ORDER BY r.next_action_at LIMIT ?"
        )
        rows = self._select(query, (now, *ended, limit))
        return [RemoteFile(**dict(r)) for r in rows]

    def remote_files(self, job_id: str) -> list[RemoteFile]:
        rows = self._select("SELECT * FROM remote_files WHERE job_id = ? ORDER BY file_id", (job_id,))
        return [RemoteFile(**dict(r)) for r in rows]

    def update_remote_file(self, file_id: str, **changes: Unpack[RemoteFileChanges]) -> None:
        self._update("remote_files", "file_id", file_id, dict(changes))
