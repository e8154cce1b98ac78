"""The lost jobs of a profile whose batches carry nothing of ours (kind anthropic), for ``batchd recover``.

An input in state/inflight/ claimed for such a profile, or a pack in state/packs/ whose members
were, is a *unit*: its parts are its part files (state/parts/JOB/SEG[.ATTEMPT].jsonl, a pack's
own folder), or the input itself when it has none (a small input held for a pack). Each part is
matched with the service's batches by ``unlabelled_batches``; from the findings a unit is rebuilt
(its parts adopted, awaiting their candidates, or ready to send), given back (never sent), or held.
An input whose part files are gone and that its profile's limits would have split cannot be
matched by counts at all: it is held.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.intake.packer import PACK_FILE
from daemon.intake.preparer import batch_limits
from daemon.ops.job_rebuilder import JobBuilder, Rows
from daemon.ops.part_rebuilder import (
    Key,
    UnmatchedError,
    count_requests,
    custom_ids,
    first_lines,
    local_part_files,
)
from daemon.ops.unlabelled_batches import Finding, LostPart, Verdict
from daemon.service.anthropic_service import local_reference
from daemon.state import folders
from daemon.state.rows import Part
from daemon.state.states import PartOrigin, PartState


@dataclass(slots=True)
class LostUnit:
    """A lost input (or pack) of such a profile, with its parts' files."""

    job_id: str
    path: Path  # the input in state/inflight/, or the pack's folder
    profile: str
    files: dict[Key, Path]  # (segment, attempt): the part file; empty: the input itself is its only part
    members: list[dict[str, str]] | None = None  # a pack's, from its members.json
    problem: str = ""  # why it cannot be matched at all
    parts: list[LostPart] = field(default_factory=list)

    @property
    def keys(self) -> list[Key]:
        return sorted(self.files) or [(0, 0)]

    def file(self, key: Key) -> Path:
        return self.files.get(key, self.path)


def claimed_at(job_id: str) -> float:
    """When a job (or pack) was made, from its id (intake.new_job_id)."""
    return float(calendar.timegm(time.strptime(job_id[:16], "%Y%m%dT%H%M%SZ")))


class UnlabelledJobs:
    def __init__(self, settings: Settings, builder: JobBuilder) -> None:
        self.settings = settings
        self.builder = builder

    def input_unit(self, job_id: str, path: Path, profile: str) -> LostUnit:
        files = local_part_files(self.settings.state / folders.PARTS / job_id)
        unit = LostUnit(job_id, path, profile, files)
        if not files and self._needs_split(path, profile):
            unit.problem = (
                "its part files in state/parts/ are gone and it needs several batches: its batches cannot be told "
                "by their request counts. Look for them in the service's console; drop it again only if it has none"
            )
        else:
            self._read_parts(unit)
        return unit

    def pack_unit(self, pack_id: str, folder: Path, profile: str, members: list[dict[str, str]]) -> LostUnit:
        files = local_part_files(folder)
        unit = LostUnit(pack_id, folder, profile, files, members)
        if (0, 0) not in files:
            unit.problem = f"its {PACK_FILE} is gone: what its batch holds cannot be told"
        else:
            self._read_parts(unit)
        return unit

    def _needs_split(self, path: Path, profile: str) -> bool:
        limits = batch_limits(self.settings, profile)
        count, size = count_requests(path)
        return count > limits.max_requests or size > limits.max_bytes

    def _read_parts(self, unit: LostUnit) -> None:
        made = claimed_at(unit.job_id)
        for key in unit.keys:
            path = unit.file(key)
            count, _ = count_requests(path)
            ids = frozenset(custom_ids(path))
            if len(ids) != count:  # a batch of it could not be told by its results
                unit.problem = f"the custom_ids of {path.name} cannot be read (one a line, each once): it is damaged"
                return
            unit.parts.append(LostPart((unit.job_id, *key), count, ids, made))

    # rows -------------------------------------------------------------------------------
    def parts(self, unit: LostUnit, findings: dict[tuple[str, int, int], Finding]) -> list[Part]:
        """Its parts in the states their findings say (none held: the caller checked)."""
        parts = [self._part(unit, key, findings[(unit.job_id, *key)]) for key in unit.keys]
        keys = set(unit.keys)
        for part in parts:
            if (part.segment, part.attempt + 1) in keys:
                if part.state != PartState.FINISHED:
                    raise UnmatchedError(f"part {part.label} was sent again, so it had a batch, but none was found")
                part.state = PartState.SUPERSEDED  # its unfinished requests went again in the next attempt
        return parts

    def _part(self, unit: LostUnit, key: Key, finding: Finding) -> Part:
        if not unit.files:  # the input itself is its only part
            part = self.builder.own_part(unit.job_id, unit.path, PartState.READY)
        else:
            path = unit.file(key)
            count, size = count_requests(path)
            now = time.time()
            part = Part(unit.job_id, key[0], key[1], str(path), 1, count, size, max(1, size // 4), PartState.READY,
                        now, now)  # fmt: skip
        if finding.verdict is Verdict.UNSENT:
            return part
        part.file_id = local_reference(Path(part.path))  # nothing is uploaded for a Message Batch
        if finding.verdict is Verdict.AWAITS:  # a create whose reply was lost: see candidate_batches
            part.state, part.intent_at = PartState.BATCH_INTENT, claimed_at(unit.job_id)
            return part
        batch = finding.batch
        if batch is None:
            raise DaemonError(f"part {part.label} was adopted without a batch")
        part.batch_id, part.batch_status, part.batch_json = batch.id, batch.status, batch.to_json()
        part.submitted_at, part.poll_wait, part.next_action_at = float(batch.created_at), 0.0, 0.0
        part.state = PartState.FINISHED
        return part

    def input_rows(self, unit: LostUnit, findings: dict[tuple[str, int, int], Finding], name: str) -> Rows:
        parts = self.parts(unit, findings)
        mine = [findings[(unit.job_id, *key)].batch for key in unit.keys]
        adopted = [batch for batch in mine if batch is not None]
        job, requests = self.builder.lost_job(unit.job_id, unit.path, name, unit.profile, adopted)
        first = [p for p in parts if p.attempt == 0]
        counts = [p.request_count for p in first]
        if [p.segment for p in first] != list(range(len(first))) or sum(counts) != requests:
            raise UnmatchedError(
                f"its part files hold {sum(counts)} requests in segments {[p.segment for p in first]}, the input "
                f"{requests}"
            )
        lines = dict(zip((p.segment for p in first), first_lines(unit.path, counts), strict=True))
        for part in parts:
            part.first_line = lines[part.segment]
        self.builder.parts.download_superseded(parts, Path(job.result_dir or ""))
        return job, parts

    def pack_rows(
        self, unit: LostUnit, findings: dict[tuple[str, int, int], Finding], inflight: dict[str, Path]
    ) -> list[Rows]:
        parts = self.parts(unit, findings)
        for part in parts:
            part.origin = PartOrigin.PACK
        assert unit.members is not None
        return self.builder.pack_rows_of(unit.job_id, unit.path, parts, unit.members, inflight, unit.profile)
