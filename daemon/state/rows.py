"""The rows of the state database as dataclasses, and their conversion to and from SQLite values."""

from __future__ import annotations

import calendar
import dataclasses
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from daemon.config import CANCEL_NOTE
from daemon.providers import DEFAULT_PROFILE
from daemon.state.states import (
    FAILED_BATCH_STATUS,
    INPUT_KIND,
    OUTCOME_WORDS,
    JobState,
    PartOrigin,
    PartOutcome,
    PartState,
)

# How ``batchd abandon`` wrote its request into the job's note before the request had columns of
# its own (schema 5): the migration, and a read-only look at an older database, read them there.
ABANDON_NOTE = "abandoned by the operator"  # every abandoned job's note starts so
CANCELLED_FIRST = "; its batches were cancelled first"
ABANDON_TIME = "%Y-%m-%d %H:%M:%S UTC"  # the note's "at ..."


def noted_abandon_time(note: str, fallback: float) -> float:
    """The time such a note gives ("abandoned by the operator at 2026-01-02 03:04:05 UTC...")."""
    stamp = note.removeprefix(ABANDON_NOTE).removeprefix(" at ").split(CANCELLED_FIRST)[0]
    try:
        return float(calendar.timegm(time.strptime(stamp, ABANDON_TIME)))
    except ValueError:
        return fallback


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
    abandon_requested_at: float | None = None  # when `batchd abandon` ran: the job ends, nothing more is sent
    abandon_after_cancel: bool = False  # abandoned with --cancel, accepted: it ends once those batches ended
    profile: str = DEFAULT_PROFILE  # the provider profile whose service runs it (its pending_upload/ subfolder)

    @property
    def abandoned(self) -> bool:
        return self.abandon_requested_at is not None


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
    origin: PartOrigin = PartOrigin.OWN_FILE  # where its requests are (states.PartOrigin)
    outcome: PartOutcome | None = None  # how batchd ended it without a finished batch, if it did
    # The model its lines name when its job's input names several (split_by_model); None: the job's model.
    model: str | None = None

    @property
    def upload_name(self) -> str:
        """The remote file name: it carries the job and part, so a lost upload can be found again."""
        return f"batchd-{self.job_id}-{self.segment}-{self.attempt}.jsonl"

    @property
    def label(self) -> str:
        return f"{self.segment}.{self.attempt}"

    @property
    def holds_input(self) -> bool:
        """A small input's only part kept in memory, with no part file: its requests are the input's
        own lines (preparer._place), read again only as they were checked."""
        return self.origin == PartOrigin.HELD_INPUT

    @property
    def imported_without_input(self) -> bool:
        """A batch the seed import adopted without its input: its requests are not here to resend."""
        return self.origin == PartOrigin.IMPORTED_WITHOUT_INPUT

    @property
    def refused(self) -> bool:
        """Nothing of it ran: the service failed its batch at validation, or refused it before."""
        return self.outcome == PartOutcome.REFUSED or self.batch_status == FAILED_BATCH_STATUS

    @property
    def shown_status(self) -> str | None:
        """Its batch's status, or the word for how batchd ended it: what reports and results show."""
        return OUTCOME_WORDS[self.outcome] if self.outcome is not None else self.batch_status


def part_model(part: Part, job: Job) -> str | None:
    """The model ``part``'s requests name: its own (an input split by model) or its job's."""
    return part.model or job.model


def job_models(job: Job, parts: Iterable[Part]) -> list[str]:
    """Every model ``job``'s requests name, in the order of its segments: its own model, or each
    of its parts' when its input was split by model (its own model is then None)."""
    ordered = sorted(parts, key=lambda p: (p.segment, p.attempt))
    found = dict.fromkeys(m for m in (part_model(p, job) for p in ordered) if m)
    return list(found) or ([job.model] if job.model else [])


class JobChanges(TypedDict, total=False):
    """The columns a step may change on a job (Store.update_job); the state only as the table allows."""

    state: JobState
    result_dir: str
    source_name: str  # a converted input's new name (NAME.jsonl.gz decompressed is NAME.jsonl)
    inflight_path: str  # a converted input's file (see intake/conversion.py)
    sha256: str
    size: int
    endpoint: str | None
    model: str | None
    request_count: int
    final_path: str
    note: str | None
    finished_at: float
    cancel_requested: bool
    abandon_requested_at: float | None
    abandon_after_cancel: bool


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
    origin: PartOrigin
    outcome: PartOutcome | None


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
    return str(value) if isinstance(value, JobState | PartState | PartOrigin | PartOutcome) else value


# A database read-only before the daemon migrated it (`batchd status` right after an upgrade) lacks
# the newer columns: their values are read from what the older schema recorded instead.
# ("cancelled" is left out: it is also what the service says of a batch it cancelled.)
_OLD_OUTCOMES = {word: outcome for outcome, word in OUTCOME_WORDS.items() if outcome != PartOutcome.CANCELLED}


def job_from(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["state"] = JobState(values["state"])
    note = values["note"] or ""
    values["cancel_requested"] = bool(values.get("cancel_requested", note == CANCEL_NOTE))
    if "abandon_requested_at" not in values:
        noted = note.startswith(ABANDON_NOTE)
        values["abandon_requested_at"] = noted_abandon_time(note, values["updated_at"]) if noted else None
        values["abandon_after_cancel"] = noted and CANCELLED_FIRST in note
    values["abandon_after_cancel"] = bool(values["abandon_after_cancel"])
    values.setdefault("profile", DEFAULT_PROFILE)  # a read-only look at a database older than schema 6
    return Job(**values)


def part_from(row: sqlite3.Row) -> Part:
    values = dict(row)
    values["state"] = PartState(values["state"])
    if "outcome" not in values:
        values["outcome"] = _OLD_OUTCOMES.get(values["batch_status"])
        values["origin"] = PartOrigin.IMPORTED_WITHOUT_INPUT if not values["path"] else PartOrigin.OWN_FILE
    values["origin"] = PartOrigin(values["origin"])
    values["outcome"] = PartOutcome(values["outcome"]) if values["outcome"] else None
    return Part(**values)
