"""How many batches were created lately, read from the parts' ``submitted_at`` (so a restart keeps the count)."""

from __future__ import annotations

from daemon.state.database import Database
from daemon.state.states import PartState

# Parts that will each create one batch: the creates already promised.
UNCREATED = (PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED, PartState.BATCH_INTENT)


class CreationQueries(Database):
    def creation_times(self, since: float) -> list[float]:
        """When each batch created at or after ``since`` was created, oldest first. Pack members
        carry their pack's batch id: each batch counts once."""
        rows = self._select(
            "SELECT MIN(submitted_at) AS t FROM parts WHERE submitted_at >= ? AND batch_id IS NOT NULL "
            "GROUP BY batch_id ORDER BY t",
            (since,),
        )
        return [float(r["t"]) for r in rows]

    def uncreated_batches(self, states: tuple[PartState, ...] = UNCREATED) -> int:
        """Parts on their way to a batch of their own (one create each), in ``states``."""
        marks = ",".join("?" * len(states))
        rows = self._select(
            f"SELECT COUNT(*) AS n FROM parts WHERE state IN ({marks})",  # noqa: S608 - marks only
            tuple(map(str, states)),
        )
        return int(rows[0]["n"])
