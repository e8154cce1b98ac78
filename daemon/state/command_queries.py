"""The operators' commands (cancel, abandon, retry), as the running daemon recorded and carried them out.

A command is requested through the spool folder (ops/command_queue.py), entered here by the daemon
with who asked and when, and ends ``done``, ``failed`` (it could not be carried out, e.g. the service
did not answer) or ``refused`` (it must not be: an unknown job, a job in the wrong state).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from daemon.redaction import redact_value
from daemon.state.database import Database

REQUESTED, DONE, FAILED, REFUSED = "requested", "done", "failed", "refused"
COMMAND_STATES = (REQUESTED, DONE, FAILED, REFUSED)
ENDED_COMMAND_STATES = (DONE, FAILED, REFUSED)


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    kind: str  # cancel, abandon, retry, retry_failed
    target: str  # the job: its input's name as dropped, or its id
    requested_by: str
    requested_at: float
    options: dict[str, Any] = field(default_factory=dict)  # force (retry), cancel (abandon)
    state: str = REQUESTED
    result: str | None = None
    done_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "options": self.options,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "state": self.state,
            "result": self.result,
            "done_at": self.done_at,
        }


def command_from(row: sqlite3.Row) -> Command:
    values = dict(row)
    values["options"] = json.loads(values["options"] or "{}")
    return command_from_dict(values)


def command_from_dict(values: dict[str, Any]) -> Command:
    """A command from its JSON form (a spool file's), checked: raise ValueError saying what is wrong."""
    names = ("id", "kind", "target", "requested_by")
    if not all(isinstance(values.get(n), str) for n in names):
        raise ValueError(f"a command needs the texts {', '.join(names)}")
    options = values.get("options")
    done_at = values.get("done_at")
    return Command(
        id=values["id"],
        kind=values["kind"],
        target=values["target"],
        requested_by=values["requested_by"],
        requested_at=float(values.get("requested_at") or 0.0),
        options=options if isinstance(options, dict) else {},
        state=str(values.get("state") or REQUESTED),
        result=None if values.get("result") is None else str(values["result"]),
        done_at=None if done_at is None else float(done_at),
    )


class CommandQueries(Database):
    def add_command(self, command: Command) -> bool:
        """Enter a requested command; False if one with its id is there already (a spool file read twice)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO commands (id, kind, target, options, requested_by, requested_at, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    command.id,
                    command.kind,
                    command.target,
                    json.dumps(command.options),
                    command.requested_by,
                    command.requested_at,
                    REQUESTED,
                ),
            )
            return cur.rowcount == 1

    def end_command(self, command_id: str, state: str, result: str, done_at: float) -> None:
        """Record the outcome (error texts may quote what a service echoed: redacted like last_error)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE commands SET state = ?, result = ?, done_at = ? WHERE id = ?",
                (state, redact_value(result), done_at, command_id),
            )

    def command(self, command_id: str) -> Command | None:
        rows = self._select("SELECT * FROM commands WHERE id = ?", (command_id,))
        return command_from(rows[0]) if rows else None

    def requested_commands(self) -> list[Command]:
        """Commands not carried out yet, oldest first (also those a crash interrupted)."""
        rows = self._select("SELECT * FROM commands WHERE state = ? ORDER BY requested_at, id", (REQUESTED,))
        return [command_from(r) for r in rows]

    def recent_commands(self, limit: int = 50) -> list[Command]:
        """The newest commands first, for a view of who did what."""
        if not self._has_commands():
            return []  # a database read-only before the daemon migrated it
        rows = self._select("SELECT * FROM commands ORDER BY requested_at DESC, id LIMIT ?", (limit,))
        return [command_from(r) for r in rows]

    def _has_commands(self) -> bool:
        return bool(self._select("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commands'", ()))
