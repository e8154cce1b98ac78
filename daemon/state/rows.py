"""The rows of the state database as dataclasses, and their conversion to and from SQLite values."""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any, TypedDict

from daemon.config import CANCEL_NOTE
from daemon.state.states import INPUT_KIND, JobState, PartState


@dataclass(slots=True)
class Job:
    id: str
    source_name: str
    source_path: str
    inflight_path: str
    state: JobState
    created_at: float
    updated_at: float
    result_dir: str | None = None
    sha256: str | None = None
    size: int | None = None
    endpoint: str | None = None
    model: str | None = None
    request_count: int | None = None
    final_path: str | None = None
    note: str | None = None
    finished_at: float | None = None
    kind: str = INPUT_KIND
    cancel_requested: bool = False  # `batchd cancel` ran: submit and resubmit nothing more


@dataclass(slots=True)
class Part:
    job_id: str
    segment: int
    attempt: int
    path: str
    first_line: int
    request_count: int
    byte_size: int
    est_tokens: int
    state: PartState
    created_at: float
    updated_at: float
    id: int = 0  # 0 until stored
    intent_at: float | None = None
    file_id: str | None = None
    batch_id: str | None = None
    batch_status: str | None = None
    batch_json: str | None = None
    old_batch_ids: str = ""
    next_action_at: float = 0.0
    poll_wait: float = 0.0
    tries: int = 0
    last_error: str | None = None
    submitted_at: float | None = None
    pack_id: str | None = None  # the pack whose batch carries this part's requests
    pack_slot: int | None = None  # its number in that pack: the prefix of its custom_ids there

    @property
    def upload_name(self) -> str:
        """The remote file name: it carries the job and part, so a lost upload can be found again."""
        return f"batchd-{self.job_id}-{self.segment}-{self.attempt}.jsonl"

    @property
    def label(self) -> str:
        return f"{self.segment}.{self.attempt}"

    # Where a part's requests are: its own part file, or, recognised by the path alone, two others.
    def holds_input(self, job: Job) -> bool:
        """A small input's only part kept in memory, with no part file: its requests are the input's
        own lines (preparer._place), read again only as they were checked."""
        return self.path == job.inflight_path

    @property
    def imported_without_input(self) -> bool:
        """A batch the seed import adopted without its input: its requests are not here to resend."""
        return not self.path


class JobChanges(TypedDict, total=False):
    """The columns a step may change on a job (Store.update_job); the state only as the table allows."""

    state: JobState
    result_dir: str
    sha256: str
    size: int
    endpoint: str | None
    model: str | None
    request_count: int
    final_path: str
    note: str | None
    finished_at: float
    cancel_requested: bool


class PartChanges(TypedDict, total=False):
    """The columns a step may change on a part (Store.update_part); the state only as the table allows."""

    state: PartState
    path: str
    intent_at: float | None
    file_id: str | None
    batch_id: str | None
    batch_status: str | None
    batch_json: str | None
    old_batch_ids: str
    next_action_at: float
    poll_wait: float
    tries: int
    last_error: str | None
    submitted_at: float | None
    pack_id: str | None
    pack_slot: int | None


class RemoteFileChanges(TypedDict, total=False):
    state: str
    tries: int
    next_action_at: float
    last_error: str | None


@dataclass(slots=True)
class RemoteFile:
    """A file on the service to delete once its job's results are written (remote hygiene)."""

    file_id: str
    job_id: str
    role: str  # input, output or errors
    # pending, deleted (or found gone), abandoned (gave up; the service's expiry removes it), or kept
    # (its batch's downloads did not verify: left on the service for a person to look at)
    state: str
    updated_at: float
    tries: int = 0
    next_action_at: float = 0.0
    last_error: str | None = None


def row_values(row: Job | Part) -> dict[str, Any]:
    """A row's columns; dataclasses.asdict deep-copies every value, which costs a burst of claims dearly."""
    return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}


def db_value(value: object) -> object:
    return str(value) if isinstance(value, JobState | PartState) else value


def job_from(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    # A database read-only before the daemon migrated it has no column yet: the note then says it.
    values["cancel_requested"] = bool(values.get("cancel_requested", values["note"] == CANCEL_NOTE))
    return Job(**values)


def part_from(row: sqlite3.Row) -> Part:
    values = dict(row)
    values["state"] = PartState(values["state"])
    return Part(**values)
