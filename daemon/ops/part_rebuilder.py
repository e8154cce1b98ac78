"""Rebuilding one job's rows from its files in state/ and its batches on the service.

Used by ``batchd recover`` (see cli/recover.py). A part is identified by its batch's metadata
(``batchd_job``, ``batchd_part`` = segment.attempt) and by its file: the part file batchd wrote
(state/parts/JOB/SEG.jsonl, SEG.ATTEMPT.jsonl for a resubmission, or a pack's file), checked
against the batch's ``batchd_part_sha256``; if it is gone or differs, the batch's own input file
is downloaded instead (checked the same way). Nothing here creates anything on the service.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.intake.line_reader import is_blank
from daemon.intake.packer import split_slot
from daemon.intake.validation import iter_lines, iter_normalised
from daemon.logs import get_logger
from daemon.ops.upload_labels import labelled_by_upload
from daemon.providers import DEFAULT_PROFILE
from daemon.results.collector import download_names
from daemon.service.batch_info import BatchInfo, FileInfo
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.service.submitter import file_sha256
from daemon.state.rows import Part
from daemon.state.states import TERMINAL_BATCH_STATUSES, PartState

log = get_logger(__name__)
_PART_FILE = re.compile(r"(\d+)(?:\.(\d+))?\.jsonl")
_LABEL = re.compile(r"(\d+)\.(\d+)")
Key = tuple[int, int]  # (segment, attempt)


class UnmatchedError(DaemonError):
    """What was found does not add up to a job batchd can rebuild safely; it is left as it is."""


@dataclass(slots=True)
class RemoteView:
    """What the services hold within the horizon: batchd's batches by job id, its uploads by name,
    and the provider profile whose service holds each of them."""

    batches: dict[str, list[BatchInfo]] = field(default_factory=dict)
    uploads: dict[str, FileInfo] = field(default_factory=dict)
    by_id: dict[str, BatchInfo] = field(default_factory=dict)
    profile_of: dict[str, str] = field(default_factory=dict)  # batch id or upload name: its profile
    untold: dict[str, list[BatchInfo]] = field(default_factory=dict)  # per profile: batches whose input file is gone

    def read(self, remote: BatchService, not_before: float, tracked: set[str], profile: str = DEFAULT_PROFILE) -> None:
        """List the service's batches and uploads since ``not_before``; batches in ``tracked`` are
        recorded already and left out. Both are listed before either is taken: a profile whose
        listing fails adds nothing half-seen. A service that drops metadata has its batches told by
        their input files' names (see upload_labels)."""
        listed = [b for b in remote.batches_since(not_before) if b.id not in tracked]
        if remote.profile.supports_metadata:
            uploads = remote.uploads_since(not_before, "batchd-")
        else:
            files = remote.uploads_since(not_before, "")
            listed, unknown = labelled_by_upload(listed, files)
            uploads = [f for f in files if f.filename.startswith("batchd-")]
            if unknown:
                self.untold[profile] = unknown
        for batch in listed:
            job_id = (batch.metadata or {}).get("batchd_job")
            if job_id:
                self.batches.setdefault(job_id, []).append(batch)
                self.by_id[batch.id] = batch
                self.profile_of[batch.id] = profile
        for upload in uploads:
            if upload.filename not in self.uploads:
                self.uploads[upload.filename] = upload
                self.profile_of[upload.filename] = profile

    def profile_of_batches(self, batches: list[BatchInfo]) -> str:
        """The one profile whose service holds all of ``batches``: one job's batches never span two."""
        found = {self.profile_of.get(b.id, DEFAULT_PROFILE) for b in batches}
        if len(found) > 1:
            raise UnmatchedError(f"its batches are on the services of several profiles ({', '.join(sorted(found))})")
        return found.pop() if found else DEFAULT_PROFILE


def label_key(batch: BatchInfo) -> Key | None:
    found = _LABEL.fullmatch((batch.metadata or {}).get("batchd_part", ""))
    return (int(found[1]), int(found[2])) if found else None


def part_file(folder: Path, key: Key) -> Path:
    """Where batchd keeps a part's file (collector names a resubmission SEG.ATTEMPT.jsonl)."""
    segment, attempt = key
    return folder / (f"{segment}.jsonl" if attempt == 0 else f"{segment}.{attempt}.jsonl")


def local_part_files(folder: Path) -> dict[Key, Path]:
    found: dict[Key, Path] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            match = _PART_FILE.fullmatch(path.name)
            if match:
                found[(int(match[1]), int(match[2] or 0))] = path
    return found


def count_requests(path: Path) -> tuple[int, int]:
    """(requests, bytes) of a part file, as uploaded."""
    count = size = 0
    with open(path, "rb") as fh:
        for data in iter_normalised(fh):
            count, size = count + 1, size + len(data)
    return count, size


def custom_ids(path: Path) -> set[str]:
    """The custom_ids of a file of requests (one that cannot be read as such has none)."""
    found: set[str] = set()
    try:
        with open(path, "rb") as fh:
            for data in iter_normalised(fh):
                line = orjson.loads(data)
                found.add(str(line["custom_id"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return set()
    return found


def slot_ids(pack_file: Path) -> list[set[str]]:
    """Per slot of a pack's file, the members' own custom_ids."""
    slots: dict[int, set[str]] = {}
    for custom_id in custom_ids(pack_file):
        found = split_slot(custom_id)
        if found is not None:
            slots.setdefault(found[0], set()).add(found[1])
    return list(slots.values())


class PartRebuilder:
    """Builds the parts of one job (an input or a pack) from its folder and its batches."""

    def __init__(self, settings: Settings, remote: BatchService | ProfileServices, view: RemoteView) -> None:
        self.settings = settings
        self.services = profile_services(remote)
        self.view = view

    def _service(self, batch: BatchInfo) -> BatchService:
        """The service of the profile that holds ``batch``: its files are there."""
        return self.services.of(self.view.profile_of.get(batch.id, DEFAULT_PROFILE))

    def parts(self, job_id: str, folder: Path, batches: list[BatchInfo]) -> list[Part]:
        by_key: dict[Key, list[BatchInfo]] = {}
        for batch in batches:
            key = label_key(batch)
            if key is None:
                raise UnmatchedError(f"batch {batch.id} names no part (metadata batchd_part)")
            by_key.setdefault(key, []).append(batch)
        keys = sorted(set(by_key) | set(local_part_files(folder)))
        parts = [self._part(job_id, folder, key, sorted(by_key.get(key, []), key=_age)) for key in keys]
        for part in parts:
            if (part.segment, part.attempt + 1) in keys:
                part.state = PartState.SUPERSEDED  # its unfinished requests went again in the next attempt
        return parts

    def _part(self, job_id: str, folder: Path, key: Key, batches: list[BatchInfo]) -> Part:
        path = part_file(folder, key)
        if batches:
            self._ensure_file(path, batches[-1])
        elif not path.exists():
            raise UnmatchedError(f"part {key[0]}.{key[1]} has neither a file in {folder} nor a batch")
        count, size = count_requests(path)
        now = time.time()
        part = Part(job_id, key[0], key[1], str(path), 1, count, size, max(1, size // 4), PartState.READY, now, now)
        if batches:
            _adopt(part, batches, self.settings.first_poll_after)
        else:
            upload = self.view.uploads.get(part.upload_name)
            if upload is not None:  # uploaded, no batch yet: the submitter finds and adopts the file by name
                part.state, part.intent_at = PartState.UPLOAD_INTENT, float(upload.created_at)
        return part

    def _ensure_file(self, path: Path, batch: BatchInfo) -> None:
        """The part file as uploaded: ours if it matches the batch, else the batch's input file."""
        wanted = (batch.metadata or {}).get("batchd_part_sha256", "")
        if path.exists() and (not wanted or file_sha256(path) == wanted):
            return
        if batch.input_file_id is None:
            raise UnmatchedError(f"batch {batch.id} has no input file to restore the part from")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._service(batch).download(batch.input_file_id, path)
        if wanted and file_sha256(path) != wanted:
            path.unlink()
            raise UnmatchedError(f"the input file of batch {batch.id} does not match its batchd_part_sha256")
        log.info("part_file_restored", batch_id=batch.id, file=str(path))

    def download_superseded(self, parts: Iterable[Part], folder: Path) -> None:
        """Outputs of batches whose unfinished requests went again: the collector fetched them
        before resubmitting and never will again, so fetch any the lost results folder lacks."""
        for part in parts:
            batch = self.view.by_id.get(part.batch_id or "")
            if part.state != PartState.SUPERSEDED or batch is None:
                continue
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            files = (batch.output_file_id, batch.error_file_id)
            for file_id, name in zip(files, download_names(batch.id), strict=True):
                if file_id and not (folder / name).exists():
                    self._service(batch).download(file_id, folder / name)


def first_lines(path: Path, counts: list[int]) -> list[int]:
    """The input line number of each segment's first request (segments of ``counts`` requests)."""
    starts = {sum(counts[:n]): n for n in range(len(counts))}
    found = [1] * len(counts)
    seen = 0
    with open(path, "rb") as fh:
        for line_no, raw in iter_lines(fh):
            if is_blank(raw):
                continue
            if seen in starts:
                found[starts[seen]] = line_no
            seen += 1
    return found


def _age(batch: BatchInfo) -> tuple[int, str]:
    return batch.created_at, batch.id


def _adopt(part: Part, batches: list[BatchInfo], first_poll: float) -> None:
    """The newest batch is the part's; earlier ones (refused for a full queue) are kept as old."""
    batch = batches[-1]
    part.file_id, part.batch_id, part.batch_status = batch.input_file_id, batch.id, batch.status
    part.batch_json = batch.to_json()
    part.old_batch_ids = ",".join(b.id for b in batches[:-1])
    part.submitted_at, part.poll_wait, part.next_action_at = float(batch.created_at), first_poll, 0.0
    part.state = PartState.FINISHED if batch.status in TERMINAL_BATCH_STATUSES else PartState.SUBMITTED
