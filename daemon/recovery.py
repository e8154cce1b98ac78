"""``batchd recover``: rebuild lost state from the files in state/ and the batches on the service.

Inputs in state/inflight/ (named JOBID_NAME), part files in state/parts/JOBID/ and packs in
state/packs/PACKID/ (with members.json) that no job records are matched with the batches the
service lists within a horizon, by their batchd metadata (``batchd_job``, ``batchd_part``,
``batchd_sha256`` and ``batchd_part_sha256``). An input with batches gets its job back, its parts
in the state their batches are in (polled and collected as usual); a pack gets its job and its
members theirs. An input no batch carries goes back to pending_upload/ to be claimed again, and
its stray uploads are deleted. Nothing is ever created on the service here, so no batch is paid
for twice; what does not add up is left where it is and reported. Running it again does nothing
more: only files and batches no job records are looked at.
"""

from __future__ import annotations

import calendar
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from openai.types import Batch

from daemon import folders
from daemon.config import Settings
from daemon.errors import DaemonError, StateCorruptError
from daemon.fileops import free_name, fsync_dir, move_no_clobber, safe_component, same_file
from daemon.logs import get_logger
from daemon.merger import RESULTS_NAME
from daemon.packer import MANIFEST, PACK_FILE, UNMATCHED_NOTE
from daemon.preparer import result_dir_for
from daemon.reconstruction import (
    PartRebuilder,
    RemoteView,
    UnmatchedError,
    count_requests,
    custom_ids,
    fingerprint,
    first_lines,
    slot_ids,
)
from daemon.remote import Remote
from daemon.state_guard import RECOVERED_FACT
from daemon.states import PACK_KIND, TERMINAL_BATCH_STATUSES, JobState, PartState
from daemon.store import Job, Part, Store
from daemon.validation import Findings, validate_file

log = get_logger(__name__)
DEFAULT_HORIZON_DAYS = 30.0  # the 24 h window plus output retention, with room to spare
_JOB_ID = r"\d{8}T\d{6}Z-[0-9a-f]{12}"  # intake.new_job_id; packs are named the same way
DOWNLOAD_ENDINGS = ("_output.jsonl", "_errors.jsonl")  # collector.download_names
_INFLIGHT_NAME = re.compile(rf"({_JOB_ID})(?:_(.+)|\.jsonl)", re.DOTALL)


@dataclass(slots=True)
class Recovered:
    """What a recovery did, for the command's output and the log."""

    jobs: list[str] = field(default_factory=list)
    adopted_batches: list[str] = field(default_factory=list)
    returned: list[tuple[str, str]] = field(default_factory=list)  # (input, where it went)
    left: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    uploads_deleted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"adopted {len(set(self.adopted_batches))} batch(es) into {len(self.jobs)} job(s)",
            f"returned {len(self.returned)} input(s) to pending_upload/ (never submitted)",
        ]
        out += [f"  {src} -> {dest}" for src, dest in self.returned]
        if self.uploads_deleted:
            out.append(f"deleted {len(self.uploads_deleted)} stray upload(s) of those inputs on the service")
        out.append(f"left {len(self.left)} thing(s) it could not match")
        out += [f"  {what}: {why}" for what, why in self.left]
        return out


def recover_state(settings: Settings, remote: Remote, horizon_days: float = DEFAULT_HORIZON_DAYS) -> Recovered:
    """Rebuild what the database lost; refuses (AlreadyRunningError) while a daemon runs on the root."""
    folders.prepare(settings)
    lock = folders.InstanceLock(settings.state)
    lock.acquire()
    try:
        store = open_store(settings.state / folders.DB_NAME)
        try:
            return Recovery(settings, store, remote, time.time() - horizon_days * 86400).run()
        finally:
            store.close()
    finally:
        lock.release()


def open_store(db: Path) -> Store:
    """The database, or a new one: a damaged one is moved aside (kept), as is a log without its database."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if not db.exists() or db.stat().st_size == 0:  # a log replayed into a new database would be half a state
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            _set_aside(extra, stamp, "its database is gone")
    try:
        return Store(db)
    except StateCorruptError as exc:
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            _set_aside(path, stamp, str(exc))
        return Store(db)


def _set_aside(path: Path, stamp: str, why: str) -> None:
    if path.exists():
        dest = path.with_name(f"{path.name}.damaged-{stamp}")
        os.rename(path, dest)
        log.warning("state_file_set_aside", file=str(path), kept_as=str(dest), reason=why)


class Recovery:
    def __init__(self, settings: Settings, store: Store, remote: Remote, not_before: float) -> None:
        self.settings = settings
        self.store = store
        self.remote = remote
        self.not_before = not_before
        self.done = Recovered()
        self.view = RemoteView()
        self.rebuilder = PartRebuilder(settings, remote, self.view)
        self.unreadable_packs: list[Path] = []  # pack folders without members.json (made before it existed)
        self._slots: dict[Path, list[set[str]]] = {}

    def _unreadable_pack_of(self, path: Path) -> str | None:
        """The pack among the unreadable ones whose slot holds exactly this input's custom_ids, if any:
        such an input may well have been sent, so it is never given back."""
        wanted = custom_ids(path) if self.unreadable_packs else set()
        for folder in self.unreadable_packs:
            if folder not in self._slots:
                self._slots[folder] = slot_ids(folder / PACK_FILE)
            if wanted in self._slots[folder]:
                return folder.name
        return None

    def run(self) -> Recovered:
        inflight = self._orphan_inputs()
        packs = self._orphan_packs()
        if inflight or packs:  # nothing local to rebuild: the service is not even asked
            self._read_service()
            for pack_id, folder in packs.items():
                self._recover_pack(pack_id, folder, inflight)
            for job_id, path in sorted(inflight.items()):
                self._recover_input(job_id, path)
            self._report_running_orphans()
        self.store.set_fact(RECOVERED_FACT, orjson.dumps({"at": time.time(), "jobs": len(self.done.jobs)}).decode())
        log.info(
            "state_recovered",
            jobs=len(self.done.jobs),
            adopted_batches=len(set(self.done.adopted_batches)),
            returned=len(self.done.returned),
            left=len(self.done.left),
        )
        return self.done

    # what is local ----------------------------------------------------------------------
    def _orphan_inputs(self) -> dict[str, Path]:
        known = {j.inflight_path for j in self.store.jobs()}
        found: dict[str, Path] = {}
        for path in sorted((self.settings.state / folders.INFLIGHT).iterdir()):
            match = _INFLIGHT_NAME.fullmatch(path.name)
            if str(path) in known:
                continue
            if match is None or self.store.has_job(match[1]):
                self._leave(path, "not an input batchd claimed (its name carries no job id of a lost job)")
            elif not self._finish_archive_move(path, match[1]):
                found[match[1]] = path
        return found

    def _finish_archive_move(self, path: Path, job_id: str) -> bool:
        """A crash between the link and the unlink of the archive move leaves the input in both
        places; its results were written before the move began, so the move is only finished."""
        name = safe_component(source_name_of(path))
        stem, dot, ext = name.partition(".")
        for folder in (self.settings.uploaded, self.settings.failed):
            for candidate in (folder / name, folder / (f"{stem}.{job_id}{dot}{ext}" if dot else f"{name}.{job_id}")):
                if candidate.exists() and same_file(candidate, path):
                    path.unlink()
                    fsync_dir(path.parent)
                    log.info("archive_move_finished", job_id=job_id, archived=str(candidate))
                    return True
        return False

    def _orphan_packs(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in sorted((self.settings.state / folders.PACKS).iterdir()):
            if self.store.has_job(folder.name) or (folder / UNMATCHED_NOTE).exists():
                continue
            if (folder / MANIFEST).exists() and re.fullmatch(_JOB_ID, folder.name):
                found[folder.name] = folder
            else:
                self.unreadable_packs.append(folder)
                self._leave(folder, f"not a pack folder batchd can read (no {MANIFEST}, or not named by a pack id)")
        return found

    # what the service holds -------------------------------------------------------------
    def _read_service(self) -> None:
        self.view.read(self.remote, self.not_before, _tracked_batch_ids(self.store))

    # rebuilding -------------------------------------------------------------------------
    def _recover_pack(self, pack_id: str, folder: Path, inflight: dict[str, Path]) -> None:
        members = orjson.loads((folder / MANIFEST).read_bytes())["members"]
        batches = self.view.batches.get(pack_id, [])
        if not batches:
            if self._within_horizon(pack_id, folder):  # never sent: its members go back to be claimed again
                self._settle_members(pack_id, members, inflight, give_back=True)
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self._settle_members(pack_id, members, inflight, give_back=False)
            return
        try:
            rows = self._pack_rows(pack_id, folder, batches, members, inflight)
        except (DaemonError, OSError) as exc:  # unmatched, or the service failed: the next run tries again
            self._leave(folder, str(exc))
            self._settle_members(pack_id, members, inflight, give_back=False)
            return
        for member in members:
            inflight.pop(member["job_id"], None)
        self._record(rows, batches)

    def _settle_members(
        self, pack_id: str, members: list[dict[str, str]], inflight: dict[str, Path], *, give_back: bool
    ) -> None:
        """Members of a pack not rebuilt: back to the drop zone if the pack was surely never sent, else
        left where they are (returning them could pay for their requests twice). One that went alone
        after all has batches of its own and is rebuilt as an input."""
        for member in members:
            path = inflight.get(member["job_id"])
            if path is None or self.view.batches.get(member["job_id"]):
                continue
            del inflight[member["job_id"]]
            if give_back:
                self._return_input(member["job_id"], path, member["source_name"])
            else:
                self._leave(path, f"its requests may travel in the batch of pack {pack_id}, which was not rebuilt")

    def _pack_rows(
        self, pack_id: str, folder: Path, batches: list[Batch], members: list[dict[str, str]], inflight: dict[str, Path]
    ) -> list[tuple[Job, list[Part]]]:
        rows: list[tuple[Job, list[Part]]] = []
        for slot, member in enumerate(members):
            path = inflight.get(member["job_id"])
            if path is not None:  # one without its input has ended: its results are written
                rows.append(self._member_rows(member, path, pack_id, slot, batches))
        parts = self.rebuilder.parts(pack_id, folder, batches)
        self.rebuilder.download_superseded(parts, folder)
        now, first = time.time(), batches[0]
        job = Job(pack_id, f"pack of {len(members)} inputs", "", "", JobState.ACTIVE, now, now)
        job.kind, job.result_dir, job.endpoint = PACK_KIND, str(folder), first.endpoint
        job.size = sum(p.byte_size for p in parts if p.attempt == 0)
        job.model = rows[0][0].model if rows else None
        job.request_count = sum(p.request_count for p in parts if p.attempt == 0)
        return [(job, parts), *rows]

    def _member_rows(
        self, member: dict[str, str], path: Path, pack_id: str, slot: int, batches: list[Batch]
    ) -> tuple[Job, list[Part]]:
        job_id = member["job_id"]
        job, _ = self._job(job_id, path, member["source_name"], {member.get("sha256") or ""}, batches)
        part = self._own_part(job_id, path, PartState.PACKED)
        part.pack_id, part.pack_slot = pack_id, slot
        return job, [part]

    def _recover_input(self, job_id: str, path: Path) -> None:
        batches = self.view.batches.get(job_id, [])
        name = source_name_of(path)
        if not batches:
            if not self._within_horizon(job_id, path):
                return
            held = self._downloads_held(name, job_id)
            packed = self._unreadable_pack_of(path)
            if held and self._adopt_handed_over(job_id, path, name, held):
                return
            if held:
                self._leave(path, f"no batch of its own, but {held} holds results of a shared batch whose pack is gone")
            elif packed:
                self._leave(path, f"no batch of its own, but its requests are in pack {packed}, which cannot be read")
            else:
                self._return_input(job_id, path, name)
            return
        try:
            rows = self._input_rows(job_id, path, batches)
        except (DaemonError, OSError) as exc:  # unmatched, or the service failed: the next run tries again
            self._leave(path, str(exc))
            return
        self._record([rows], batches)

    def _adopt_handed_over(self, job_id: str, path: Path, name: str, folder: Path) -> bool:
        """An input handed its share of a pack's results, whose pack then ended (its folder gone)
        before the input's own results were merged: it gets its job back with those downloads."""
        ids = {p.name.rsplit("_", 1)[0] for p in folder.iterdir() if p.name.endswith(DOWNLOAD_ENDINGS)}
        batches = sorted((self.view.by_id[i] for i in ids if i in self.view.by_id), key=lambda b: (b.created_at, b.id))
        if not batches or any(b.status not in TERMINAL_BATCH_STATUSES for b in batches):
            return False
        try:
            job, _ = self._job(job_id, path, name, set(), batches)
            part = self._own_part(job_id, path, PartState.DOWNLOADED)
        except (DaemonError, OSError):
            return False
        last = batches[-1]
        part.batch_id, part.batch_status, part.batch_json = last.id, last.status, last.model_dump_json()
        part.old_batch_ids = ",".join(b.id for b in batches[:-1])
        self._record([(job, [part])], batches)
        return True

    def _own_part(self, job_id: str, path: Path, state: PartState) -> Part:
        """The one part of a small input: its own part file if it has one, else the input itself."""
        own = self.settings.state / folders.PARTS / job_id / "0.jsonl"
        source = own if own.exists() else path
        (count, size), now = count_requests(source), time.time()
        first = first_lines(path, [count])[0]
        return Part(job_id, 0, 0, str(source), first, count, size, max(1, size // 4), state, now, now)

    def _input_rows(self, job_id: str, path: Path, batches: list[Batch]) -> tuple[Job, list[Part]]:
        meta = batches[0].metadata or {}
        name = meta.get("batchd_source") or source_name_of(path)
        job, findings = self._job(job_id, path, name, {(b.metadata or {}).get("batchd_sha256", "") for b in batches},
                                  batches)  # fmt: skip
        parts = self.rebuilder.parts(job_id, self.settings.state / folders.PARTS / job_id, batches)
        first = [p for p in parts if p.attempt == 0]
        counts = [p.request_count for p in first]
        if [p.segment for p in first] != list(range(len(first))) or sum(counts) != findings.requests:
            raise UnmatchedError(
                f"its part files and batches hold {sum(counts)} requests in segments "
                f"{[p.segment for p in first]}, the input {findings.requests}"
            )
        lines = dict(zip((p.segment for p in first), first_lines(path, counts), strict=True))
        for part in parts:
            part.first_line = lines[part.segment]
        self.rebuilder.download_superseded(parts, Path(job.result_dir or ""))
        return job, parts

    def _job(self, job_id: str, path: Path, name: str, claimed: set[str], batches: list[Batch]) -> tuple[Job, Findings]:
        sha256, size = fingerprint(path)
        if claimed - {"", sha256}:
            raise UnmatchedError("the input differs from the one its batches were made from (sha256)")
        findings = validate_file(path)
        if not findings.ok:
            raise UnmatchedError(f"the input no longer passes validation ({findings.problem_count} problem(s))")
        now = time.time()
        job = Job(job_id, name, str(self.settings.pending / name), str(path), JobState.ACTIVE, now, now)
        job.sha256, job.size, job.endpoint, job.model = sha256, size, findings.endpoint, findings.model
        job.request_count, job.result_dir = findings.requests, str(self._result_dir(name, job_id, batches))
        return job, findings

    def _result_dir(self, name: str, job_id: str, batches: list[Batch]) -> Path:
        """The job's results folder as it was (holding its downloads, or only unfinished temp files
        when a crash cut the first download short), else a free one."""
        for candidate in _result_dirs(self.settings, name, job_id):
            if not candidate.is_dir() or self.store.result_dir_taken(str(candidate), job_id):
                continue
            names = [p.name for p in candidate.iterdir()]
            if any(_is_download_of(n, batches) for n in names) or all(n.startswith(".") for n in names):
                return candidate
        return result_dir_for(self.settings, self.store, name, job_id)

    def _downloads_held(self, name: str, job_id: str) -> Path | None:
        """A results folder of this input holding a shared batch's results not yet merged: it was
        handed its share of a pack whose folder is gone. (An earlier input of the same name left
        its results.jsonl beside its downloads, and the folder tagged with this job id is ours.)"""
        tagged, plain = _result_dirs(self.settings, name, job_id)
        for candidate in (tagged, plain):
            names = {p.name for p in candidate.iterdir()} if candidate.is_dir() else set()
            if candidate == plain and RESULTS_NAME in names:
                continue
            if any(n.endswith(DOWNLOAD_ENDINGS) for n in names):
                return candidate
        return None

    def _record(self, rows: list[tuple[Job, list[Part]]], batches: list[Batch]) -> None:
        with self.store.transaction():  # a job and its parts land together, or the next run tries again
            for job, parts in rows:
                self.store.add_job(job)
                for part in parts:
                    self.store.add_part(part)
        for job, parts in rows:
            self.done.jobs.append(job.id)
            log.info("job_recovered", job_id=job.id, file=job.source_name, parts=len(parts), kind=job.kind)
        for batch in batches:
            self.done.adopted_batches.append(batch.id)
            log.info("batch_adopted", job_id=rows[0][0].id, batch_id=batch.id, status=batch.status)

    # returning and leaving --------------------------------------------------------------
    def _return_input(self, job_id: str, path: Path, name: str) -> None:
        """Never submitted: back to the drop zone under its own name (or a free one), claimed anew."""
        pending = self.settings.pending / safe_component(name)
        if pending.exists() and same_file(pending, path):  # the claim's link was made, not its unlink
            path.unlink()
            dest = pending
        else:
            dest = free_name(self.settings.pending, safe_component(name), job_id)
            move_no_clobber(path, dest)
        shutil.rmtree(self.settings.state / folders.PARTS / job_id, ignore_errors=True)
        self._delete_uploads(job_id)
        self.done.returned.append((str(path), str(dest)))
        log.info("input_returned", job_id=job_id, file=name, moved_to=str(dest))

    def _delete_uploads(self, job_id: str) -> None:
        """Its files uploaded before the state was lost: no batch uses them, and it is uploaded again."""
        prefix = f"batchd-{job_id}-"
        for upload_name, upload in sorted(self.view.uploads.items()):
            if upload_name.startswith(prefix):
                try:
                    self.remote.delete_file(upload.id)
                except DaemonError as exc:
                    self._leave(Path(upload_name), f"stray upload {upload.id} could not be deleted: {exc}")
                    continue
                self.done.uploads_deleted.append(upload.id)

    def _report_running_orphans(self) -> None:
        """A batch still running for a job with no input here: paid work nobody will collect."""
        known = set(self.done.jobs) | {j.id for j in self.store.jobs()}
        for job_id, batches in sorted(self.view.batches.items()):
            for batch in batches:
                if job_id not in known and batch.status not in TERMINAL_BATCH_STATUSES:
                    self._leave(Path(f"batch {batch.id}"), f"{batch.status} for job {job_id}; no job rebuilt for it")

    def _within_horizon(self, job_id: str, path: Path) -> bool:
        """Whether every batch made for this job would be in the listing: it was claimed (or packed)
        after the horizon began. If not, "no batch found" proves nothing and it is left as it is."""
        made = calendar.timegm(time.strptime(job_id[:16], "%Y%m%dT%H%M%SZ"))
        if made >= self.not_before:
            return True
        day = time.strftime("%Y-%m-%d", time.gmtime(made))
        self._leave(path, f"made on {day}, before the horizon: run `batchd recover --since-days N` reaching back")
        return False

    def _leave(self, what: Path, why: str) -> None:
        self.done.left.append((str(what), why))
        log.warning("recovery_left", item=str(what), reason=why)


def source_name_of(inflight: Path) -> str:
    """The name an input was dropped with, from its name in state/inflight/ (JOBID_NAME)."""
    match = _INFLIGHT_NAME.fullmatch(inflight.name)
    if match is None or match[2] is None:
        return inflight.name if match is None else f"{match[1]}.jsonl"
    return match[2]


def _result_dirs(settings: Settings, name: str, job_id: str) -> tuple[Path, Path]:
    """The folder tagged with the job id, and the plain one (see preparer.result_dir_for)."""
    stem = safe_component(name.removesuffix(".jsonl"))
    return settings.results / f"{stem}.{job_id}", settings.results / stem


def _is_download_of(name: str, batches: list[Batch]) -> bool:
    return any(name in (f"{b.id}_output.jsonl", f"{b.id}_errors.jsonl") for b in batches)


def _tracked_batch_ids(store: Store) -> set[str]:
    ids: set[str] = set()
    for part in store.parts_in(PartState):
        ids.update(filter(None, [part.batch_id, *part.old_batch_ids.split(",")]))
    return ids
