"""The crash-safe state: one SQLite database (WAL, synchronous=FULL) under state/.

Every external call is bracketed by a write here: the intent before it, the result after it.
The Store is the one object the daemon's floors hold: the connection and transactions
(database.py), the job and part queries here, the metrics tallies (metrics_queries.py), the
remote files to delete (remote_file_queries.py), the batches created lately (creation_queries.py) and
the operators' commands (command_queries.py) and the notifications owed (notice_queries.py).
The schema and its migrations are in schema.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Unpack

from daemon.providers import DEFAULT_PROFILE
from daemon.state.command_queries import CommandQueries
from daemon.state.creation_queries import CreationQueries
from daemon.state.metrics_queries import MetricsQueries
from daemon.state.notice_queries import NoticeQueries
from daemon.state.remote_file_queries import RemoteFileQueries
from daemon.state.rows import Job, JobChanges, Part, PartChanges, job_from, part_from, row_values
from daemon.state.states import (
    TERMINAL_JOB_STATES,
    JobState,
    PartOrigin,
    PartState,
    check_job_move,
    check_origin_move,
    check_part_move,
)


class Store(MetricsQueries, RemoteFileQueries, CreationQueries, CommandQueries, NoticeQueries):
    """Typed access to the state database. Thread-safe: one connection behind a lock."""

    # jobs -------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        self._insert("jobs", row_values(job))

    def update_job(self, job_id: str, **changes: Unpack[JobChanges]) -> None:
        """Change the job's columns; a new state only as states.JOB_MOVES allows (ForbiddenMoveError)."""
        with self.transaction():
            if "state" in changes:
                rows = self._select("SELECT state FROM jobs WHERE id = ?", (job_id,))
                if rows:
                    check_job_move(job_id, JobState(rows[0]["state"]), changes["state"])
            self._update("jobs", "id", job_id, dict(changes))

    def delete_job(self, job_id: str) -> None:
        """Only for a claim that never happened: the file is still the user's, in the drop zone."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def job(self, job_id: str) -> Job:
        rows = self._select("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(job_id)
        return job_from(rows[0])

    def jobs(self, states: Iterable[JobState] | None = None) -> list[Job]:
        if states is None:
            return [job_from(r) for r in self._select("SELECT * FROM jobs ORDER BY created_at, id", ())]
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        query = f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created_at, id"  # noqa: S608
        return [job_from(r) for r in self._select(query, wanted)]

    def open_abandoned_job_ids(self) -> list[str]:
        """Open jobs an operator abandoned (``batchd abandon``), not yet ended."""
        running = [str(s) for s in JobState if s not in TERMINAL_JOB_STATES]  # IN: the state index serves it
        marks = ",".join("?" * len(running))
        query = (
            f"SELECT id FROM jobs WHERE state IN ({marks}) AND abandon_requested_at IS NOT NULL"  # noqa: S608 - marks only
            " ORDER BY created_at, id"
        )
        return [str(r["id"]) for r in self._select(query, running)]

    def has_job(self, job_id: str) -> bool:
        return bool(self._select("SELECT 1 FROM jobs WHERE id = ?", (job_id,)))

    def job_ids(self, state: JobState) -> list[str]:
        rows = self._select("SELECT id FROM jobs WHERE state = ? ORDER BY created_at, id", (str(state),))
        return [str(r["id"]) for r in rows]

    def count_jobs(self, states: Iterable[JobState]) -> int:
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        rows = self._select(f"SELECT COUNT(*) AS n FROM jobs WHERE state IN ({marks})", wanted)  # noqa: S608
        return int(rows[0]["n"])

    def routed_jobs(self) -> dict[str, str]:
        """The jobs routed to a provider profile other than the default one: job id to profile."""
        rows = self._select("SELECT id, profile FROM jobs WHERE profile != ?", (DEFAULT_PROFILE,))
        return {str(r["id"]): str(r["profile"]) for r in rows}

    def result_dir_taken(self, path: str, other_than: str) -> bool:
        rows = self._select("SELECT 1 FROM jobs WHERE result_dir = ? AND id != ?", (path, other_than))
        return bool(rows)

    # parts ------------------------------------------------------------------------------
    def add_part(self, part: Part) -> Part:
        values = row_values(part)
        values.pop("id")
        part.id = self._insert("parts", values)
        return part

    def update_part(self, part_id: int, **changes: Unpack[PartChanges]) -> None:
        """Change the part's columns; a new state only as states.PART_MOVES allows, a new origin only as
        states.ORIGIN_MOVES does (ForbiddenMoveError)."""
        with self.transaction():
            if "state" in changes or "origin" in changes:
                rows = self._select("SELECT job_id, state, origin FROM parts WHERE id = ?", (part_id,))
                if rows and "state" in changes:
                    check_part_move(part_id, rows[0]["job_id"], PartState(rows[0]["state"]), changes["state"])
                if rows and "origin" in changes:
                    check_origin_move(part_id, PartOrigin(rows[0]["origin"]), changes["origin"])
            self._update("parts", "id", part_id, dict(changes))

    def unpack_part(
        self, part_id: int, own_file: str, *, old_batch_ids: str | None = None, last_error: str | None = None
    ) -> None:
        """A packed member goes again in a batch of its own, from its own part file."""
        changes: PartChanges = {
            "state": PartState.READY,
            "path": own_file,
            "origin": PartOrigin.OWN_FILE,
            "pack_id": None,
            "pack_slot": None,
            "next_action_at": 0,
        }
        if old_batch_ids is not None:
            changes["old_batch_ids"] = old_batch_ids
        if last_error is not None:
            changes["last_error"] = last_error
        self.update_part(part_id, **changes)

    def part(self, part_id: int) -> Part:
        rows = self._select("SELECT * FROM parts WHERE id = ?", (part_id,))
        if not rows:
            raise KeyError(part_id)
        return part_from(rows[0])

    def parts(self, job_id: str) -> list[Part]:
        rows = self._select("SELECT * FROM parts WHERE job_id = ? ORDER BY segment, attempt", (job_id,))
        return [part_from(r) for r in rows]

    def pack_members(self, pack_id: str) -> list[Part]:
        """The parts a pack carries, by slot."""
        rows = self._select("SELECT * FROM parts WHERE pack_id = ? ORDER BY pack_slot", (pack_id,))
        return [part_from(r) for r in rows]

    def parts_by_job(self) -> dict[str, list[Part]]:
        """Every part, grouped by job, each job's in segment and attempt order."""
        grouped: dict[str, list[Part]] = {}
        for row in self._select("SELECT * FROM parts ORDER BY job_id, segment, attempt", ()):
            part = part_from(row)
            grouped.setdefault(part.job_id, []).append(part)
        return grouped

    def parts_in(self, states: Iterable[PartState]) -> list[Part]:
        wanted = [str(s) for s in states]
        marks = ",".join("?" * len(wanted))
        query = f"SELECT * FROM parts WHERE state IN ({marks}) ORDER BY id"  # noqa: S608
        return [part_from(r) for r in self._select(query, wanted)]

    def due_parts(self, state: PartState, now: float, limit: int = 1000) -> list[Part]:
        rows = self._select(
            "SELECT * FROM parts WHERE state = ? AND next_action_at <= ? ORDER BY next_action_at LIMIT ?",
            (str(state), now, limit),
        )
        return [part_from(r) for r in rows]

    def finishable_job_ids(self) -> list[str]:
        """Jobs to merge: COLLECTING ones, and ACTIVE ones whose parts are all done (a crash came
        between the last download and the merge, which would otherwise leave them ACTIVE for ever)."""
        rows = self._select(
            "SELECT id FROM jobs j WHERE state = ? OR (state = ?"
            " AND EXISTS (SELECT 1 FROM parts p WHERE p.job_id = j.id)"
            " AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.job_id = j.id AND p.state NOT IN (?, ?)))"
            " ORDER BY created_at, id",
            (str(JobState.COLLECTING), str(JobState.ACTIVE), str(PartState.DOWNLOADED), str(PartState.SUPERSEDED)),
        )
        return [str(r["id"]) for r in rows]

    def due_part_ids(self, states: tuple[PartState, ...], now: float) -> list[int]:
        """Ids only: the main loop dispatches by id on every pass, so whole rows would be waste."""
        marks = ",".join("?" * len(states))
        rows = self._select(
            f"SELECT id FROM parts WHERE state IN ({marks}) AND next_action_at <= ? ORDER BY next_action_at",  # noqa: S608 - marks only
            (*map(str, states), now),
        )
        return [int(r["id"]) for r in rows]

    def due_part_ids_sized(self, states: tuple[PartState, ...], now: float, over: int) -> list[tuple[int, bool]]:
        """``due_part_ids``, each with whether its input (or the part itself) is over ``over`` bytes."""
        marks = ",".join("?" * len(states))
        big = "(p.byte_size > ? OR COALESCE(j.size, 0) > ?) AS big"
        where = f"p.state IN ({marks}) AND p.next_action_at <= ? ORDER BY p.next_action_at"
        query = f"SELECT p.id, {big} FROM parts p JOIN jobs j ON j.id = p.job_id WHERE {where}"  # noqa: S608 - marks only
        rows = self._select(query, (over, over, *map(str, states), now))
        return [(int(r["id"]), bool(r["big"])) for r in rows]

    def next_due_of(self, states: tuple[PartState, ...], after: float) -> float | None:
        """The earliest next_action_at after ``after`` of the parts in ``states``: when the main loop next
        has a step to hand out (one due already was handed out, or its worker says when it is done)."""
        query = "SELECT MIN(next_action_at) AS due FROM parts WHERE state = ? AND next_action_at > ?"
        dues = [self._select(query, (str(state), after))[0]["due"] for state in states]  # indexed, per state
        return min((float(due) for due in dues if due is not None), default=None)

    def next_due(self, state: PartState) -> float | None:
        rows = self._select("SELECT MIN(next_action_at) AS due FROM parts WHERE state = ?", (str(state),))
        due = rows[0]["due"]
        return None if due is None else float(due)

    def enqueued_tokens(self, model: str, profile: str = DEFAULT_PROFILE) -> int:
        """Estimated input tokens of this model's batches ``profile``'s service has not finished
        (each service has its own queue). A part's model is its own, if its input named several."""
        rows = self._select(
            "SELECT COALESCE(SUM(p.est_tokens), 0) AS n FROM parts p JOIN jobs j ON j.id = p.job_id "
            "WHERE p.state = ? AND COALESCE(p.model, j.model) = ? AND j.profile = ?",
            (str(PartState.SUBMITTED), model, profile),
        )
        return int(rows[0]["n"])

    def part_by_batch(self, batch_id: str) -> Part | None:
        """The part tracking ``batch_id`` now (a webhook names only the batch)."""
        rows = self._select("SELECT * FROM parts WHERE batch_id = ? ORDER BY id DESC LIMIT 1", (batch_id,))
        return part_from(rows[0]) if rows else None

    # facts (heartbeat, imports, learned limits) -------------------------------------------
    def set_fact(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO facts(key, value) VALUES (?, ?)", (key, value))

    def delete_fact(self, key: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM facts WHERE key = ?", (key,))

    def fact(self, key: str) -> str | None:
        rows = self._select("SELECT value FROM facts WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def facts_starting(self, prefix: str) -> dict[str, str]:
        """Every fact whose key starts with ``prefix`` (compared as text: ``_`` is no wildcard here)."""
        rows = self._select("SELECT key, value FROM facts WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {str(row["key"]): str(row["value"]) for row in rows}
