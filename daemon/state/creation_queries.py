"""How many batches were created lately, read from the parts' ``submitted_at`` (so a restart keeps the count).

Counted per provider profile when one is named (each service has its own hourly limit: a part counts
on the profile of its job), over all of them when none is.
"""

from __future__ import annotations

from daemon.state.database import Database
from daemon.state.states import PartState

# Parts that will each create one batch: the creates already promised.
UNCREATED = (PartState.READY, PartState.UPLOAD_INTENT, PartState.UPLOADED, PartState.BATCH_INTENT)


def _of_profile(profile: str | None) -> tuple[str, str, tuple[str, ...]]:
    """The join, condition and argument that keep a count to one profile's parts (none: all)."""
    if profile is None:
        return "", "", ()
    return " JOIN jobs j ON j.id = parts.job_id", " AND j.profile = ?", (profile,)


class CreationQueries(Database):
    def creation_times(self, since: float, profile: str | None = None) -> list[float]:
        """When each batch created at or after ``since`` was created, oldest first. Pack members
        carry their pack's batch id: each batch counts once."""
        join, where, args = _of_profile(profile)
        rows = self._select(
            f"SELECT MIN(parts.submitted_at) AS t FROM parts{join} WHERE parts.submitted_at >= ? "  # noqa: S608 - constants only
            f"AND parts.batch_id IS NOT NULL{where} GROUP BY parts.batch_id ORDER BY t",
            (since, *args),
        )
        return [float(r["t"]) for r in rows]

    def uncreated_batches(self, states: tuple[PartState, ...] = UNCREATED, profile: str | None = None) -> int:
        """Parts on their way to a batch of their own (one create each), in ``states``."""
        marks = ",".join("?" * len(states))
        join, where, args = _of_profile(profile)
        rows = self._select(
            f"SELECT COUNT(*) AS n FROM parts{join} WHERE parts.state IN ({marks}){where}",  # noqa: S608 - marks only
            (*map(str, states), *args),
        )
        return int(rows[0]["n"])
