"""Rebuilding a lost job's rows: an input's, a pack's and its members', for ``batchd recover``.

A job is rebuilt from its input in state/inflight/ (fingerprinted and validated again, checked
against the ``batchd_sha256`` of its batches) and its parts from their files and batches (see
part_rebuilder). Its results folder is the one it had if that holds its downloads, else a free one.
Anything that does not add up raises UnmatchedError; nothing here writes the state or the service.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson

from daemon.config import Settings
from daemon.intake.claim import profile_folder
from daemon.intake.drop_names import request_stem
from daemon.intake.line_formats import line_format_of, validate_input
from daemon.intake.model_names import model_of
from daemon.intake.preparer import result_dir_for
from daemon.intake.refitter import input_lines
from daemon.intake.validation import BatchLimits, Findings, iter_normalised
from daemon.ops.part_rebuilder import (
    PartRebuilder,
    RemoteView,
    UnmatchedError,
    count_requests,
    first_lines,
)
from daemon.results.collector import download_names
from daemon.service.batch_info import BatchInfo
from daemon.state import folders
from daemon.state.fileops import fingerprint, safe_component
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, TERMINAL_BATCH_STATUSES, JobState, PartOrigin, PartState
from daemon.state.store import Store

JOB_ID = r"\d{8}T\d{6}Z-[0-9a-f]{12}"  # intake.new_job_id; packs are named the same way
# intake.inflight_name: JOBID_NAME, JOBID@PROFILE@NAME (or JOBID.jsonl, as older versions named them)
INFLIGHT_NAME = re.compile(rf"({JOB_ID})(?:_(.+)|@([a-z0-9][a-z0-9_-]{{0,63}})@(.+)|\.jsonl)", re.DOTALL)
DOWNLOAD_ENDINGS = download_names("")  # how the downloads of any batch end
ANTHROPIC_MODEL = ("params", "model")  # where an Anthropic request line names its model
Rows = tuple[Job, list[Part]]  # a job and its parts, recorded together


class JobBuilder:
    def __init__(self, settings: Settings, store: Store, parts: PartRebuilder, view: RemoteView) -> None:
        self.settings = settings
        self.store = store  # read only: result folders already given to other jobs
        self.parts = parts
        self.view = view

    def pack_rows(
        self,
        pack_id: str,
        folder: Path,
        batches: list[BatchInfo],
        members: list[dict[str, str]],
        inflight: dict[str, Path],
    ) -> list[Rows]:
        rows = self._members_rows(pack_id, members, inflight, batches)
        parts = self.parts.parts(pack_id, folder, batches)
        for part in parts:
            part.origin = PartOrigin.PACK
        self.parts.download_superseded(parts, folder)
        profile = self.view.profile_of_batches(batches)  # its members' too: one pack, one service
        return [(self._pack_job(pack_id, folder, parts, members, rows, batches[0].endpoint, profile), parts), *rows]

    def pack_rows_of(
        self,
        pack_id: str,
        folder: Path,
        parts: list[Part],
        members: list[dict[str, str]],
        inflight: dict[str, Path],
        profile: str,
    ) -> list[Rows]:
        """A pack of a profile whose batches carry nothing of ours, its parts already built
        (see unlabelled_jobs), and its members'."""
        rows = self._members_rows(pack_id, members, inflight, [], profile)
        self.parts.download_superseded(parts, folder)
        endpoint = rows[0][0].endpoint if rows else None
        return [(self._pack_job(pack_id, folder, parts, members, rows, endpoint, profile), parts), *rows]

    def _pack_job(
        self,
        pack_id: str,
        folder: Path,
        parts: list[Part],
        members: list[dict[str, str]],
        rows: list[Rows],
        endpoint: str | None,
        profile: str,
    ) -> Job:
        now = time.time()
        job = Job(pack_id, f"pack of {len(members)} inputs", "", "", JobState.ACTIVE, now, now)
        job.kind, job.result_dir, job.endpoint, job.profile = PACK_KIND, str(folder), endpoint, profile
        job.size = sum(p.byte_size for p in parts if p.attempt == 0)
        job.model = rows[0][0].model if rows else None
        job.request_count = sum(p.request_count for p in parts if p.attempt == 0)
        return job

    def _members_rows(
        self,
        pack_id: str,
        members: list[dict[str, str]],
        inflight: dict[str, Path],
        batches: list[BatchInfo],
        profile: str | None = None,
    ) -> list[Rows]:
        rows: list[Rows] = []
        for slot, member in enumerate(members):
            path = inflight.get(member["job_id"])
            if path is not None:  # one without its input has ended: its results are written
                rows.append(self._member_rows(member, path, pack_id, slot, batches, profile))
        return rows

    def _member_rows(
        self,
        member: dict[str, str],
        path: Path,
        pack_id: str,
        slot: int,
        batches: list[BatchInfo],
        profile: str | None = None,
    ) -> Rows:
        job_id = member["job_id"]
        job, _ = self._job(job_id, path, member["source_name"], {member.get("sha256") or ""}, batches, profile)
        part = self.own_part(job_id, path, PartState.PACKED)
        part.pack_id, part.pack_slot = pack_id, slot
        return job, [part]

    def own_part(self, job_id: str, path: Path, state: PartState) -> Part:
        """The one part of a small input: its own part file if it has one, else the input itself."""
        own = self.settings.state / folders.PARTS / job_id / "0.jsonl"
        source = own if own.exists() else path
        (count, size), now = count_requests(source), time.time()
        first = first_lines(path, [count])[0]
        part = Part(job_id, 0, 0, str(source), first, count, size, max(1, size // 4), state, now, now)
        part.origin = PartOrigin.OWN_FILE if source == own else PartOrigin.HELD_INPUT
        return part

    def input_rows(self, job_id: str, path: Path, batches: list[BatchInfo]) -> Rows:
        meta = batches[0].metadata or {}
        name = meta.get("batchd_source") or source_name_of(path)
        job, findings = self._job(job_id, path, name, {(b.metadata or {}).get("batchd_sha256", "") for b in batches},
                                  batches)  # fmt: skip
        parts = self.parts.parts(job_id, self.settings.state / folders.PARTS / job_id, batches)
        first = [p for p in parts if p.attempt == 0]
        counts = [p.request_count for p in first]
        if [p.segment for p in first] != list(range(len(first))) or sum(counts) != findings.requests:
            raise UnmatchedError(
                f"its part files and batches hold {sum(counts)} requests in segments "
                f"{[p.segment for p in first]}, the input {findings.requests}"
            )
        if len(findings.models) > 1:  # split by model: its segments are no runs of the input
            _give_models(job, parts)
        else:
            lines = dict(zip((p.segment for p in first), first_lines(path, counts), strict=True))
            for part in parts:
                part.first_line = lines[part.segment]
        self.parts.download_superseded(parts, Path(job.result_dir or ""))
        return job, parts

    def lost_job(self, job_id: str, path: Path, name: str, profile: str, batches: list[BatchInfo]) -> tuple[Job, int]:
        """The job of an input of ``profile`` whose batches (``batches``, those found) carry nothing of
        ours, and its request count."""
        job, findings = self._job(job_id, path, name, set(), batches, profile)
        return job, findings.requests

    def _job(
        self,
        job_id: str,
        path: Path,
        name: str,
        claimed: set[str],
        batches: list[BatchInfo],
        profile: str | None = None,
    ) -> tuple[Job, Findings]:
        sha256, size = fingerprint(path)
        if claimed - {"", sha256}:
            raise UnmatchedError("the input differs from the one its batches were made from (sha256)")
        profile = profile or self.view.profile_of_batches(batches)  # the service its batches were found on
        chosen = self.settings.profile(profile)
        # Several models pass: an input split by model (split_by_model) was sent, whatever the setting says now.
        limits = BatchLimits(urls=chosen.url_forms(), line_format=line_format_of(chosen), split_models=True)
        findings = validate_input(path, limits)
        if not findings.ok:
            raise UnmatchedError(f"the input no longer passes validation ({findings.problem_count} problem(s))")
        now = time.time()
        pending = profile_folder(self.settings.pending, profile) / name
        job = Job(job_id, name, str(pending), str(path), JobState.ACTIVE, now, now, profile=profile)
        job.sha256, job.size, job.endpoint, job.model = sha256, size, findings.endpoint, findings.model
        job.request_count, job.result_dir = findings.requests, str(self._result_dir(name, job_id, batches))
        return job, findings

    def _result_dir(self, name: str, job_id: str, batches: list[BatchInfo]) -> Path:
        """The job's results folder as it was (holding its downloads, or only unfinished temp files
        when a crash cut the first download short), else a free one."""
        for candidate in result_dirs(self.settings, name, job_id):
            if not candidate.is_dir() or self.store.result_dir_taken(str(candidate), job_id):
                continue
            names = [p.name for p in candidate.iterdir()]
            if any(_is_download_of(n, batches) for n in names) or all(n.startswith(".") for n in names):
                return candidate
        return result_dir_for(self.settings, self.store, name, job_id)

    def handed_over_rows(self, job_id: str, path: Path, name: str, folder: Path) -> Rows | None:
        """An input handed its share of a pack's results, whose pack then ended (its folder gone)
        before the input's own results were merged: its job, with those downloads as its part's."""
        ids = {p.name.rsplit("_", 1)[0] for p in folder.iterdir() if p.name.endswith(DOWNLOAD_ENDINGS)}
        batches = sorted((self.view.by_id[i] for i in ids if i in self.view.by_id), key=lambda b: (b.created_at, b.id))
        if not batches or any(b.status not in TERMINAL_BATCH_STATUSES for b in batches):
            return None
        job, _ = self._job(job_id, path, name, set(), batches)
        part = self.own_part(job_id, path, PartState.DOWNLOADED)
        last = batches[-1]
        part.batch_id, part.batch_status, part.batch_json = last.id, last.status, last.to_json()
        part.old_batch_ids = ",".join(b.id for b in batches[:-1])
        return job, [part]


def _give_models(job: Job, parts: list[Part]) -> None:
    """The parts of an input split by model: each its model and its first request's input line, the
    job no one model. Its routes file, if kept in its parts folder, puts the results in input order;
    without it the collector writes them model by model and says so."""
    job.model = None
    heads = [_first_request(Path(part.path)) for part in parts]
    lines = input_lines(job, {head[0] for head in heads if head is not None})
    for part, head in zip(parts, heads, strict=True):
        if head is not None:
            part.first_line, part.model = lines.get(head[0], part.first_line), head[1]


def _first_request(path: Path) -> tuple[str, str | None] | None:
    """(custom_id, model) of a part file's first request; None if it has none that reads."""
    try:
        with open(path, "rb") as fh:
            data = next(iter_normalised(fh), None)
        line = orjson.loads(data) if data is not None else None
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None
    assert data is not None
    return line["custom_id"], model_of(data) or model_of(data, ANTHROPIC_MODEL)


def source_name_of(inflight: Path) -> str:
    """The name an input was dropped with, from its name in state/inflight/ (JOBID_NAME, JOBID@PROFILE@NAME)."""
    match = INFLIGHT_NAME.fullmatch(inflight.name)
    if match is None:
        return inflight.name
    return match[2] or match[4] or f"{match[1]}.jsonl"


def profile_of_inflight(inflight: Path) -> str | None:
    """The profile an input was claimed for, from its name in state/inflight/ (None: not named there,
    the default profile's, or claimed by an older version)."""
    match = INFLIGHT_NAME.fullmatch(inflight.name)
    return None if match is None else match[3]


def result_dirs(settings: Settings, name: str, job_id: str) -> tuple[Path, Path]:
    """The folder tagged with the job id, and the plain one (see preparer.result_dir_for)."""
    stem = safe_component(request_stem(name))
    return settings.results / f"{stem}.{job_id}", settings.results / stem


def _is_download_of(name: str, batches: list[BatchInfo]) -> bool:
    return any(name in download_names(b.id) for b in batches)
