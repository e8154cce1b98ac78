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

    def held_input_files(self, profile: str) -> int:
        """Input files of the profile's jobs the service still holds, as far as the state knows: each
        part's upload not yet deleted, plus each upload under way (no file id yet). Pack members carry
        their pack's file: each file counts once."""
        rows = self._select(
            "SELECT COUNT(DISTINCT p.file_id) AS files, "
            "SUM(p.file_id IS NULL AND p.state = 'upload_intent') AS uploading "
            "FROM parts p JOIN jobs j ON j.id = p.job_id WHERE j.profile = ? "
            "AND (p.file_id IS NULL OR p.file_id NOT IN (SELECT file_id FROM remote_files WHERE state = 'deleted'))",
            (profile,),
        )
        return int(rows[0]["files"] or 0) + int(rows[0]["uploading"] or 0)

    def wake_parts_waiting(self, profile: str, reason_prefix: str, now: float) -> int:
        """Make the profile's ready parts held with a reason starting ``reason_prefix`` due now."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE parts SET next_action_at = ?, updated_at = ? WHERE state = 'ready' AND next_action_at > ? "
                "AND substr(last_error, 1, ?) = ? AND job_id IN (SELECT id FROM jobs WHERE profile = ?)",
                (now, now, now, len(reason_prefix), reason_prefix, profile),
            )
            return cursor.rowcount

    def remote_files(self, job_id: str) -> list[RemoteFile]:
        rows = self._select("SELECT * FROM remote_files WHERE job_id = ? ORDER BY file_id", (job_id,))
        return [RemoteFile(**dict(r)) for r in rows]

    def update_remote_file(self, file_id: str, **changes: Unpack[RemoteFileChanges]) -> None:
        self._update("remote_files", "file_id", file_id, dict(changes))
