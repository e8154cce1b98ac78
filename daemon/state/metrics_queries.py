"""The tallies ``ops/metrics`` and ``batchd status`` read, at scrape time, straight from the database."""

from __future__ import annotations

from daemon.providers import DEFAULT_PROFILE
from daemon.state.database import Database
from daemon.state.states import INPUT_KIND, OUTCOME_WORDS, PartState

# A part batchd ended itself is counted under the word reports show for it (states.OUTCOME_WORDS).
_SHOWN_STATUS = "COALESCE(CASE outcome " + " ".join("WHEN ? THEN ?" for _ in OUTCOME_WORDS) + " END, batch_status)"
_SHOWN_ARGS = [str(v) for pair in OUTCOME_WORDS.items() for v in pair]


class MetricsQueries(Database):
    def state_counts(self, table: str) -> dict[str, int]:
        """Rows of ``jobs`` or ``parts`` by state."""
        if table not in ("jobs", "parts"):
            raise ValueError(table)
        rows = self._select(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state", ())  # noqa: S608
        return {str(r["state"]): int(r["n"]) for r in rows}

    def input_job_counts(self) -> dict[str, int]:
        """Input jobs by state, the internal pack jobs left out (as the web page lists jobs)."""
        rows = self._select("SELECT state, COUNT(*) AS n FROM jobs WHERE kind = ? GROUP BY state", (INPUT_KIND,))
        return {str(r["state"]): int(r["n"]) for r in rows}

    def batch_part_counts(self) -> dict[str, int]:
        """Parts by state, each batch counted once as the service sees it: a pack's members are left
        out, their requests riding in the pack's own part (a member sent alone loses its pack_id)."""
        rows = self._select("SELECT state, COUNT(*) AS n FROM parts WHERE pack_id IS NULL GROUP BY state", ())
        return {str(r["state"]): int(r["n"]) for r in rows}

    def batch_status_counts(self) -> dict[str, int]:
        query = (
            f"SELECT {_SHOWN_STATUS} AS status, COUNT(*) AS n FROM parts "  # noqa: S608 - marks only
            "WHERE batch_id IS NOT NULL GROUP BY status HAVING status IS NOT NULL"
        )
        return {str(r["status"]): int(r["n"]) for r in self._select(query, _SHOWN_ARGS)}

    def request_totals(self) -> tuple[int, int]:
        """Requests the service counted as completed and as failed, over every batch seen."""
        rows = self._select(
            "SELECT COALESCE(SUM(json_extract(batch_json, '$.request_counts.completed')), 0) AS ok, "
            "COALESCE(SUM(json_extract(batch_json, '$.request_counts.failed')), 0) AS bad "
            "FROM parts WHERE batch_json IS NOT NULL",
            (),
        )
        return int(rows[0]["ok"]), int(rows[0]["bad"])

    def oldest_submitted_at(self) -> float | None:
        rows = self._select("SELECT MIN(submitted_at) AS t FROM parts WHERE state = ?", (str(PartState.SUBMITTED),))
        return None if rows[0]["t"] is None else float(rows[0]["t"])

    def enqueued_tokens_by_model(self) -> dict[str, int]:
        """``enqueued_tokens`` for every model at once (a part's own model, else its job's)."""
        rows = self._select(
            "SELECT COALESCE(p.model, j.model) AS model, SUM(p.est_tokens) AS n FROM parts p "
            "JOIN jobs j ON j.id = p.job_id WHERE p.state = ? GROUP BY 1",
            (str(PartState.SUBMITTED),),
        )
        return {str(r["model"]): int(r["n"]) for r in rows}

    def state_counts_by_profile(self, table: str) -> dict[tuple[str, str], int]:
        """Rows of ``jobs`` or ``parts`` by (profile, state); a part counts under its job's profile."""
        if table not in ("jobs", "parts"):
            raise ValueError(table)
        join = "" if table == "jobs" else " p JOIN jobs j ON j.id = p.job_id"
        who = "profile" if table == "jobs" else "j.profile"
        state = "state" if table == "jobs" else "p.state"
        rows = self._select(
            f"SELECT {who} AS profile, {state} AS state, COUNT(*) AS n FROM {table}{join} GROUP BY 1, 2",  # noqa: S608
            (),
        )
        return {(str(r["profile"]), str(r["state"])): int(r["n"]) for r in rows}

    def batch_status_counts_by_profile(self) -> dict[tuple[str, str], int]:
        """``batch_status_counts`` by (profile, status)."""
        shown = _SHOWN_STATUS.replace("outcome", "p.outcome").replace("batch_status", "p.batch_status")
        query = (
            f"SELECT j.profile AS profile, {shown} AS status, COUNT(*) AS n FROM parts p "  # noqa: S608 - marks only
            "JOIN jobs j ON j.id = p.job_id WHERE p.batch_id IS NOT NULL GROUP BY 1, 2 HAVING status IS NOT NULL"
        )
        return {(str(r["profile"]), str(r["status"])): int(r["n"]) for r in self._select(query, _SHOWN_ARGS)}

    def request_totals_by_profile(self) -> dict[str, tuple[int, int]]:
        """``request_totals`` by profile: (completed, failed)."""
        rows = self._select(
            "SELECT j.profile AS profile, "
            "COALESCE(SUM(json_extract(p.batch_json, '$.request_counts.completed')), 0) AS ok, "
            "COALESCE(SUM(json_extract(p.batch_json, '$.request_counts.failed')), 0) AS bad "
            "FROM parts p JOIN jobs j ON j.id = p.job_id WHERE p.batch_json IS NOT NULL GROUP BY 1",
            (),
        )
        return {str(r["profile"]): (int(r["ok"]), int(r["bad"])) for r in rows}

    def enqueued_tokens_by_profile_model(self) -> dict[tuple[str, str], int]:
        """``enqueued_tokens`` for every (profile, model) at once: each service has its own queue.
        Read whole rows (``*``): status may look at a database older than the profile column or the
        part's model (a part's own model, else its job's)."""
        state = (str(PartState.SUBMITTED),)
        jobs = {
            str(r["id"]): dict(r)  # a Row's ``in`` looks at its values, not its column names
            for r in self._select("SELECT * FROM jobs WHERE id IN (SELECT job_id FROM parts WHERE state = ?)", state)
        }
        counts: dict[tuple[str, str], int] = {}
        for r in self._select("SELECT * FROM parts WHERE state = ?", state):
            part, job = dict(r), jobs[str(r["job_id"])]
            key = (str(job.get("profile", DEFAULT_PROFILE)), str(part.get("model") or job["model"]))
            counts[key] = counts.get(key, 0) + int(part["est_tokens"])
        return counts
