"""The on_job_done notifications owed: one row per input job that ended, until it was told.

The rows are added by the ``job_ended`` trigger (schema.py) in the very transaction that ends the
job, so no ending is missed and a restart loses none; ops/job_notifications.py delivers and drops them.
"""

from __future__ import annotations

from daemon.state.database import Database


class NoticeQueries(Database):
    def owed_notices(self, limit: int) -> list[str]:
        """Job ids whose ending is still to be told, in the order they ended."""
        rows = self._select("SELECT job_id FROM job_notices ORDER BY ended_at, job_id LIMIT ?", (limit,))
        return [str(r["job_id"]) for r in rows]

    def drop_notice(self, job_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM job_notices WHERE job_id = ?", (job_id,))

    def drop_all_notices(self) -> int:
        """Forget every ending owed (notifications are off: endings before they are turned on go untold)."""
        with self.transaction() as conn:
            return int(conn.execute("DELETE FROM job_notices").rowcount)
