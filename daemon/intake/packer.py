"""Packing: small inputs share one batch instead of each paying for its own.

The Batch API allows 2,000 batch creations an hour, and every batch costs an upload and a create:
a thousand small files dropped at once would use half an hour's allowance and take minutes to
submit. So a small input (one part, at most ``pack_inputs_up_to`` requests) waits a moment
(WAITING) while more inputs are still being claimed or prepared, at most ``pack_wait`` seconds;
then the waiting inputs of one endpoint and model are packed together, up to the batch limits.
An input that finds no company goes alone, as before. Once half of the hourly creation budget is
used, the wait stretches, up to ``pack_wait_max`` (the rule: creation_budget).

A pack is a job of kind "pack". Its part file holds its members' lines, each custom_id prefixed
with the member's slot ("<slot>:<custom_id>"), so equal custom_ids in different inputs never
collide; only those bytes change (custom_ids), so an input sends the same requests in company as
alone. It is submitted, polled, requeued and collected like any other job; when it ends,
``unpacker`` hands each member its own lines back under their own custom_ids. The pack's part
file is written and synced before the one transaction that records the pack and its members, so
a crash leaves either the inputs still waiting (and an orphan folder, swept at start) or the pack.
A waiting input held in memory when it was checked has no part file: its part points at the input
itself (kept in state/inflight/ until its results are written), which the pack is written from
once recheck has found it still the bytes that were checked. An input that cannot be packed (it
changed, or a step keeps failing on it) never stops the others: see quarantine.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import orjson

from daemon import crashpoints
from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.intake.anthropic_lines import ANTHROPIC_FORMAT, PACK_SEP, pack_prefix_fits
from daemon.intake.arrivals import small_arrivals
from daemon.intake.claim import new_job_id
from daemon.intake.creation_budget import CreationBudget
from daemon.intake.custom_ids import NotEditableError, with_prefix
from daemon.intake.profile_limits import within_profile
from daemon.intake.quarantine import Quarantine
from daemon.intake.recheck import checked_lines
from daemon.intake.refitter import token_budget
from daemon.intake.splitter import write_lines
from daemon.intake.validation import BatchLimits, embedding_inputs, iter_normalised
from daemon.logs import get_logger
from daemon.state.fileops import OWNER_ONLY_DIR, fsync_dir, write_atomic
from daemon.state.folders import PACKS, PARTS
from daemon.state.job_endings import sends_nothing_more
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, TERMINAL_JOB_STATES, JobState, PartOrigin, PartState
from daemon.state.store import Store
from daemon.state.token_limits import trusted_limit

log = get_logger(__name__)
SLOT_SEP = ":"
_SLOTTED = re.compile(rf"([0-9]+)[{re.escape(SLOT_SEP + PACK_SEP)}](.*)", re.DOTALL)
PACK_FILE = "0.jsonl"
# Beside the pack file: which input is in which slot, so `batchd recover` can rebuild a lost pack.
MANIFEST = "members.json"
# Left in a pack's folder whose outputs held lines of no input: the folder is kept for a person to look at.
UNMATCHED_NOTE = "UNMATCHED-LINES.txt"


def packable(settings: Settings, part_count: int, request_count: int) -> bool:
    """A small input: one part, at most ``pack_inputs_up_to`` requests. It may wait to share a batch."""
    return part_count == 1 and 0 < request_count <= settings.pack_inputs_up_to


def has_company(settings: Settings, store: Store) -> bool:
    """Whether an input being prepared now may find others to share a batch with: more than one
    input claimed and not yet prepared (itself and another; big ones do not count, see arrivals),
    or some already waiting. One alone in the queue has nothing to wait for and goes at once."""
    return small_arrivals(settings, store, 2) > 1 or store.next_due(PartState.WAITING) is not None


def slot_prefix(slot: int, sep: str = SLOT_SEP) -> str:
    """``<slot>:``, or ``<slot>-`` where ":" is not a custom_id character (Anthropic, anthropic_lines)."""
    return f"{slot}{sep}"


def split_slot(custom_id: str) -> tuple[int, str] | None:
    """(slot, the input's own custom_id) from an id inside a pack; None if it carries no slot. The
    slot is the leading digits; the character after them is the separator, whichever it is."""
    match = _SLOTTED.fullmatch(custom_id)
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass(slots=True)
class PackFile:
    """One pack being written: members' lines, custom_ids prefixed, within the batch limits."""

    pack_id: str
    path: Path
    fh: IO[bytes]
    limits: BatchLimits
    members: list[Part] = field(default_factory=list)
    requests: int = 0
    size: int = 0
    inputs: int = 0  # embedding inputs
    est_tokens: int = 0
    sep: str = SLOT_SEP  # Anthropic's custom_ids take no ":" and at most 64 characters (anthropic_lines)

    def try_add(self, part: Part, lines: Iterator[bytes]) -> bool:
        """Append ``part``'s ``lines``; if the pack would go over a limit (or they cannot be read
        as checked), take them out again."""
        mark = self.fh.tell()
        try:
            copied = _copy_prefixed(lines, self.fh, slot_prefix(len(self.members), self.sep), self.sep == PACK_SEP)
        except BaseException:
            self._cut(mark)
            raise
        if copied is None:  # an id with no room left for the prefix: the input goes alone
            self._cut(mark)
            return False
        requests, size, inputs = copied
        if not self._fits(requests, size, inputs, part.est_tokens):
            self._cut(mark)
            return False
        self.members.append(part)
        self.requests, self.size = self.requests + requests, self.size + size
        self.inputs, self.est_tokens = self.inputs + inputs, self.est_tokens + part.est_tokens
        return True

    def _cut(self, mark: int) -> None:
        self.fh.seek(mark)
        self.fh.truncate()

    def _fits(self, requests: int, size: int, inputs: int, tokens: int) -> bool:
        budget = self.limits.max_tokens
        return (
            self.requests + requests <= self.limits.max_requests
            and self.size + size <= self.limits.max_bytes
            and self.inputs + inputs <= self.limits.max_embedding_inputs
            and (budget is None or not self.members or self.est_tokens + tokens <= budget)
        )

    def seal(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        self.fh.close()
        shutil.rmtree(self.path.parent, ignore_errors=True)


def write_manifest(pack: PackFile, jobs: dict[str, Job]) -> None:
    """Record the pack's members (synced, before the pack itself is recorded): the batch's
    metadata has room for no such list, and without it a lost state could not tell whose lines
    are whose."""
    members = [
        {"slot": slot, "job_id": p.job_id, "source_name": jobs[p.job_id].source_name, "sha256": jobs[p.job_id].sha256}
        for slot, p in enumerate(pack.members)
    ]
    write_atomic(pack.path.with_name(MANIFEST), orjson.dumps({"pack_id": pack.pack_id, "members": members}))


def _copy_prefixed(
    lines: Iterator[bytes], out: IO[bytes], prefix: str, short_ids: bool = False
) -> tuple[int, int, int] | None:
    """Write ``lines`` with prefixed custom_ids, every other byte as it was checked (custom_ids);
    return (requests, bytes, embedding inputs). ``short_ids``: None if a prefixed id would pass
    Anthropic's 64 characters."""
    requests = size = inputs = 0
    for raw in lines:
        data = with_prefix(raw, prefix)
        line, sent = orjson.loads(raw), orjson.loads(data)
        if short_ids and not pack_prefix_fits(line["custom_id"], prefix):
            return None
        if sent["custom_id"] != prefix + line["custom_id"]:  # the scanner missed: never send a wrong id
            raise NotEditableError(f"custom_id {line['custom_id']!r} could not be prefixed in place")
        out.write(data)
        requests, size, inputs = requests + 1, size + len(data), inputs + embedding_inputs(line)
    return requests, size, inputs


def part_lines(job: Job, part: Part) -> Iterator[bytes]:
    """A waiting part's request lines: from its part file, or from the held input itself as long
    as it is still what was checked (recheck.InputChangedError otherwise)."""
    if part.holds_input:
        return checked_lines(job)
    return _file_lines(Path(part.path))


def _file_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        yield from iter_normalised(fh)


class Packer:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        batch_limits: BatchLimits,
        wake: Callable[[], None],
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock  # the pack wait is measured by it
        self.quarantine = Quarantine(settings, store, clock)
        self.limits = batch_limits
        self.wake = wake
        self.folder = settings.state / PACKS
        self.budget = CreationBudget(settings, store)

    def due(self) -> bool:
        return self.store.next_due(PartState.WAITING) is not None

    def sweep(self) -> None:
        """At start: remove the pack folders a crash left behind, before their pack was recorded or
        after it ended (unless it kept lines that matched no input: see unpacker.UNMATCHED_NOTE)."""
        for entry in os.scandir(self.folder):
            if entry.is_dir(follow_symlinks=False) and self._left_behind(Path(entry.path)):
                shutil.rmtree(entry.path, ignore_errors=True)

    def _left_behind(self, folder: Path) -> bool:
        if not self.store.has_job(folder.name):
            return True
        ended = self.store.job(folder.name).state in (JobState.DONE, JobState.FAILED)
        return ended and not (folder / UNMATCHED_NOTE).exists()

    def run(self) -> None:
        """Pack what is waiting, unless more inputs are on their way and the wait is still short."""
        waiting = [p for p in self.store.parts_in([PartState.WAITING]) if not self.quarantine.cooling(p.job_id)]
        if not waiting:
            return
        jobs = {p.job_id: self.store.job(p.job_id) for p in waiting}
        # Each profile's service has its own creation budget: one nearly spent delays only its inputs.
        lingering = {profile for profile in {j.profile for j in jobs.values()} if self._linger(waiting, profile)}
        ready = [p for p in waiting if jobs[p.job_id].profile not in lingering]
        if not ready:
            return
        groups: dict[tuple[str, str | None, str | None], list[Part]] = {}
        for part in sorted(ready, key=lambda p: (jobs[p.job_id].created_at, p.id)):
            job = jobs[part.job_id]
            groups.setdefault((job.profile, job.endpoint, job.model), []).append(part)  # never across profiles
        for group in groups.values():
            self._pack_group(group, jobs)
        self.wake()

    def _linger(self, waiting: list[Part], profile: str) -> bool:
        now = self.clock.now()
        age = now - min(p.created_at for p in waiting)
        if age < self.settings.pack_wait and small_arrivals(self.settings, self.store, 1) > 0:
            return True
        return age < self.budget.pack_wait_now(now, profile)  # 0 until half the profile's creation budget is used

    def _pack_group(self, group: list[Part], jobs: dict[str, Job]) -> None:
        # A cancelled or abandoned input goes alone: it is then ended without sending anything.
        alone = [p for p in group if sends_nothing_more(jobs[p.job_id])]
        riders = [p for p in group if not sends_nothing_more(jobs[p.job_id])]
        packs: list[PackFile] = []
        first = jobs[group[0].job_id]
        limits = within_profile(self._limits_for(first), self.settings.profile(first.profile))  # one profile a group
        for part in riders:
            added = self._add(packs[-1], part, jobs[part.job_id]) if packs else False
            if added is False:
                packs.append(self._open_pack(limits))
                added = self._add(packs[-1], part, jobs[part.job_id])
                if added is False:  # too big to carry even alone, with its prefixes
                    alone.append(part)
        for pack in packs:
            if len(pack.members) > 1:
                write_manifest(pack, jobs)
                self._record(pack, jobs[pack.members[0].job_id])
            else:
                alone.extend(pack.members)
                pack.discard()
        self._send_alone(alone, jobs)

    def _add(self, pack: PackFile, part: Part, job: Job) -> bool | None:
        """Add ``part`` to ``pack``: whether it fitted, or None if it could not be read as checked
        (it then waits for the next round, or has ended): one input never stops the rest."""
        return self.quarantine.guard(job.id, "pack", lambda: pack.try_add(part, part_lines(job, part)), contain=True)

    def _limits_for(self, job: Job) -> BatchLimits:
        """The batch limits, the token budget cut to the learned limit of the job's model on its
        profile: a pack over it would only be refused (see refitter)."""
        ttl, now = self.settings.token_limit_ttl, self.clock.now()
        limit = trusted_limit(self.store, job.model, job.profile, now, ttl) if job.model else None
        if limit is None:
            return self.limits
        budget = min(token_budget(limit), self.limits.max_tokens or limit)
        return dataclasses.replace(self.limits, max_tokens=budget)

    def _open_pack(self, limits: BatchLimits) -> PackFile:
        pack_id = new_job_id()
        folder = self.folder / pack_id
        folder.mkdir(mode=OWNER_ONLY_DIR)
        path = folder / PACK_FILE
        sep = PACK_SEP if limits.line_format == ANTHROPIC_FORMAT else SLOT_SEP
        return PackFile(pack_id, path, open(path, "wb"), limits, sep=sep)

    def _record(self, pack: PackFile, first: Job) -> None:
        pack.seal()
        crashpoints.reach("packed")
        now = self.clock.now()
        folder = str(pack.path.parent)
        job = Job(pack.pack_id, f"pack of {len(pack.members)} inputs", "", "", JobState.ACTIVE, now, now)
        job.kind, job.result_dir, job.endpoint, job.model = PACK_KIND, folder, first.endpoint, first.model
        job.profile = first.profile  # its members' profile: a pack's batch runs on their service
        job.request_count, job.size = pack.requests, pack.size
        part = Part(
            pack.pack_id, 0, 0, str(pack.path), 1, pack.requests, pack.size, pack.est_tokens, PartState.READY, now, now
        )
        part.origin = PartOrigin.PACK
        with self.store.transaction():  # the pack and its members' new state land together
            self.store.add_job(job)
            self.store.add_part(part)
            for slot, member in enumerate(pack.members):
                self.store.update_part(member.id, state=PartState.PACKED, pack_id=pack.pack_id, pack_slot=slot)
        log.info(
            "inputs_packed", pack_id=pack.pack_id, inputs=len(pack.members), requests=pack.requests, bytes=pack.size
        )

    def _send_alone(self, parts: list[Part], jobs: dict[str, Job]) -> None:
        placed: list[tuple[Part, str]] = []
        for part in parts:
            job = jobs[part.job_id]
            if self.store.job(job.id).state in TERMINAL_JOB_STATES:
                continue  # it changed after it was checked, or was set aside, while being packed
            path = self.quarantine.guard(job.id, "pack", partial(own_part_file, self.settings, job, part), contain=True)
            if path is not None:
                placed.append((part, path))
        if placed:
            with self.store.transaction():
                for part, path in placed:
                    self.store.update_part(
                        part.id, state=PartState.READY, path=path, origin=PartOrigin.OWN_FILE, next_action_at=0
                    )


def own_part_file(settings: Settings, job: Job, part: Part) -> str:
    """The part file of a small input that goes in a batch of its own after all. One that waited
    without a part file (preparer._place) gets it now, written from the input as it was checked
    (recheck.InputChangedError if it is not)."""
    if not part.holds_input:
        return part.path
    dest = settings.state / PARTS / job.id / f"{part.segment}.jsonl"
    write_lines(checked_lines(job), dest)
    return str(dest)
