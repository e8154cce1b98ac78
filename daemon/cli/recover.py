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

Every configured provider profile's service is searched; a rebuilt job records the profile whose
service holds its batches. A service that lists batches and files but drops metadata (a compatible
one) has its batches told by their input files' names, batchd-JOB-SEG-ATT.jsonl (ops/upload_labels.py);
a batch made from a file that is not ours is never adopted. A profile whose service cannot list
batches and files cannot show that an input was never sent, nor can one where a batch's input file is
gone: no input that may be that profile's is given back (it is left, reported).

A profile whose service cannot be searched now (its key missing or refused, a wrong base_url, nothing
answering) does not stop the others: it is reported with the reason and the fix (ops/unreachable_profiles.py),
and every input that may be its (claimed for it, or for the default profile or by an older version,
whose names do not say) is left untouched; run again once it works, recover rebuilds the rest.

A profile of kind anthropic is the exception: a Message Batch carries no metadata and no input file,
so the inputs and packs claimed for it (their names in state/inflight/, their members' for a pack) are
matched with its listed batches by request count, creation time and the custom_ids of ended batches'
results, all lost parts of the profile together (rules: ops/unlabelled_batches.py). A part whose one
fitting batch ended is adopted; a part that a running batch may be is recorded as a create whose reply
was lost, so the daemon waits for that batch to end and adopts it only if its results name the part's
custom_ids (service/candidate_batches.py), creating one only if no candidate could be the part's; a
part that could take another lost part's batch (the same custom_ids and count) is held, never guessed;
an input none of whose parts any batch could be is given back.
"""

from __future__ import annotations

import calendar
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from daemon.config import Settings
from daemon.errors import DaemonError, StateCorruptError
from daemon.intake.claim import profile_folder
from daemon.intake.packer import MANIFEST, PACK_FILE, UNMATCHED_NOTE
from daemon.logs import get_logger
from daemon.ops.job_rebuilder import (
    DOWNLOAD_ENDINGS,
    INFLIGHT_NAME,
    JOB_ID,
    JobBuilder,
    Rows,
    profile_of_inflight,
    result_dirs,
    source_name_of,
)
from daemon.ops.lost_state_guard import RECOVERED_FACT
from daemon.ops.part_rebuilder import PartRebuilder, RemoteView, custom_ids, slot_ids
from daemon.ops.unlabelled_batches import Finding, Key, Verdict
from daemon.ops.unlabelled_jobs import LostUnit, UnlabelledJobs
from daemon.ops.unlabelled_search import UnlabelledSearch, members_profile
from daemon.ops.unreachable_profiles import failure_reason
from daemon.providers import DEFAULT_PROFILE
from daemon.results.merger import RESULTS_NAME
from daemon.service.batch_search import CLOCK_SKEW
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.state import folders
from daemon.state.fileops import free_name, fsync_dir, move_no_clobber, safe_component, same_file
from daemon.state.states import TERMINAL_BATCH_STATUSES, PartState
from daemon.state.store import Store

log = get_logger(__name__)
DEFAULT_HORIZON_DAYS = 30.0  # the 24 h window plus output retention, with room to spare


@dataclass(slots=True)
class Recovered:
    """What a recovery did, for the command's output and the log."""

    jobs: list[str] = field(default_factory=list)
    adopted_batches: list[str] = field(default_factory=list)
    returned: list[tuple[str, str]] = field(default_factory=list)  # (input, where it went)
    left: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    uploads_deleted: list[str] = field(default_factory=list)
    awaiting: list[tuple[str, str]] = field(default_factory=list)  # (part, the running batches that may be it)
    unreachable: list[tuple[str, str]] = field(default_factory=list)  # (profile, why and what to change)

    def lines(self) -> list[str]:
        out = [f"profile {name}: NOT SEARCHED, {why}" for name, why in self.unreachable]
        out += [
            f"adopted {len(set(self.adopted_batches))} batch(es) into {len(self.jobs)} job(s)",
            f"returned {len(self.returned)} input(s) to pending_upload/ (never submitted)",
        ]
        out += [f"  {src} -> {dest}" for src, dest in self.returned]
        if self.awaiting:
            out.append(
                f"{len(self.awaiting)} part(s) wait for running batches that may be theirs (no metadata to tell): "
                "the daemon adopts the one whose results name their custom_ids once it ends, and sends one only "
                "if none does"
            )
            out += [f"  {part}: {batches}" for part, batches in self.awaiting]
        if self.uploads_deleted:
            out.append(f"deleted {len(self.uploads_deleted)} stray upload(s) of those inputs on the service")
        out.append(f"left {len(self.left)} thing(s) it could not match")
        out += [f"  {what}: {why}" for what, why in self.left]
        return out


def recover_state(
    settings: Settings,
    remote: BatchService | ProfileServices,
    horizon_days: float = DEFAULT_HORIZON_DAYS,
    unreachable: Mapping[str, str] | None = None,
) -> Recovered:
    """Rebuild what the database lost; refuses (AlreadyRunningError) while a daemon runs on the root.
    ``unreachable``: profiles that could not even be connected (a missing key), with why; their inputs
    are left as those of a profile whose service cannot be listed are."""
    folders.prepare(settings)
    lock = folders.InstanceLock(settings.state)
    lock.acquire()
    try:
        store = open_store(settings.state / folders.DB_NAME)
        try:
            not_before = time.time() - horizon_days * 86400
            return Recovery(settings, store, remote, not_before, dict(unreachable or {})).run()
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
    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: BatchService | ProfileServices,
        not_before: float,
        unreachable: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.services = profile_services(remote)
        self.not_before = not_before
        self.done = Recovered()
        self.view = RemoteView()
        self.builder = JobBuilder(settings, store, PartRebuilder(settings, self.services, self.view), self.view)
        self.unsearchable: list[str] = []  # profiles whose service cannot show which batches are ours
        self.unreachable = unreachable or {}  # profiles whose service could not be listed now: why
        jobs = UnlabelledJobs(settings, self.builder)
        self.unlabelled = UnlabelledSearch(self.services, self.view, jobs, settings.state)  # anthropic profiles
        self.unreadable_packs: list[Path] = []  # pack folders without members.json (made before it existed)
        self._slots: dict[Path, list[set[str]]] = {}

    def run(self) -> Recovered:
        inflight = self._orphan_inputs()
        packs = self._orphan_packs()
        if inflight or packs:  # with nothing local to rebuild, the service is not even asked
            self._read_service()
            self._recover_unlabelled(inflight, packs)
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
            match = INFLIGHT_NAME.fullmatch(path.name)
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
            if (folder / MANIFEST).exists() and re.fullmatch(JOB_ID, folder.name):
                found[folder.name] = folder
            else:
                self.unreadable_packs.append(folder)
                self._leave(folder, f"not a pack folder batchd can read (no {MANIFEST}, or not named by a pack id)")
        return found

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

    # what the service holds -------------------------------------------------------------
    def _read_service(self) -> None:
        tracked = _tracked_batch_ids(self.store)
        for name in self.services.names():
            service = self.services.of(name)
            try:
                self._read_profile(name, service, tracked)
            except (DaemonError, OSError) as exc:  # this profile only: the others are still recovered
                self.unreachable[name] = failure_reason(service.profile, exc)
        for name, why in sorted(self.unreachable.items()):
            self.done.unreachable.append((name, why))
            log.error("recovery_profile_unreachable", profile=name, reason=why)

    def _read_profile(self, name: str, service: BatchService, tracked: set[str]) -> None:
        if self.unlabelled.searches(service):
            self.unlabelled.read(name, service, self.not_before, tracked)
        elif not service.profile.supports_list:
            self.unsearchable.append(name)
            log.warning("recovery_profile_unsearchable", profile=name)
        else:  # by metadata, or by the names of the input files where the service drops it (upload_labels)
            self.view.read(service, self.not_before, tracked, name)

    # rebuilding -------------------------------------------------------------------------
    def _recover_pack(self, pack_id: str, folder: Path, inflight: dict[str, Path]) -> None:
        members = orjson.loads((folder / MANIFEST).read_bytes())["members"]
        batches = self.view.batches.get(pack_id, [])
        if not batches:
            named = members_profile(members, inflight)  # the default profile's or an older version's: None
            profile = None if named == DEFAULT_PROFILE else named
            ids = [pack_id, *(m["job_id"] for m in members if re.fullmatch(JOB_ID, m["job_id"]))]
            claimed = min(_claimed_at(i) for i in ids)  # a member may have gone alone before the pack was made
            if self._surely_unsent(pack_id, folder, profile, claimed):  # never sent: members go back to be claimed
                self._settle_members(pack_id, members, inflight, give_back=True)
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self._settle_members(pack_id, members, inflight, give_back=False)
            return
        try:
            rows = self.builder.pack_rows(pack_id, folder, batches, members, inflight)
        except (DaemonError, OSError) as exc:  # unmatched, or the service failed: the next run tries again
            self._leave(folder, str(exc))
            self._settle_members(pack_id, members, inflight, give_back=False)
            return
        for member in members:
            inflight.pop(member["job_id"], None)
        self._record(rows)

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

    def _recover_input(self, job_id: str, path: Path) -> None:
        batches = self.view.batches.get(job_id, [])
        name = source_name_of(path)
        if not batches:
            if self._surely_unsent(job_id, path, profile_of_inflight(path)):
                self._give_back(job_id, path, name)
            return
        try:
            rows = self.builder.input_rows(job_id, path, batches)
        except (DaemonError, OSError) as exc:  # unmatched, or the service failed: the next run tries again
            self._leave(path, str(exc))
            return
        self._record([rows])

    def _give_back(self, job_id: str, path: Path, name: str) -> None:
        """An input no batch of its own carries: back to pending_upload/, unless its requests were
        handed results of a shared batch or sit in a pack that cannot be read."""
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

    # a profile whose batches carry nothing of ours (anthropic): see ops/unlabelled_batches.py ----
    def _recover_unlabelled(self, inflight: dict[str, Path], packs: dict[str, Path]) -> None:
        """Take the inputs and packs of anthropic profiles out of ``inflight`` and ``packs`` and
        settle them by the matches of all their parts with their profile's batches."""
        units = self.unlabelled.take_units(inflight, packs)
        for profile in sorted({u.profile for u in units}):
            group = [u for u in units if u.profile == profile]
            if profile in self.unreachable:
                findings: dict[Key, Finding] | str = self._not_searched(profile)
            else:
                findings = self.unlabelled.findings(profile, group)
            for unit in group:
                self._settle_unit(unit, findings, inflight)

    def _settle_unit(self, unit: LostUnit, findings: dict[Key, Finding] | str, inflight: dict[str, Path]) -> None:
        """Rebuilt, given back or held, as its parts' findings say (see ops/unlabelled_batches.py)."""
        if isinstance(findings, str) or unit.problem:
            self._hold(unit, inflight, unit.problem or str(findings))
            return
        mine = [findings[(unit.job_id, *key)] for key in unit.keys]
        held = [f.why for f in mine if f.verdict is Verdict.HELD]
        if held:
            self._hold(unit, inflight, held[0])
        elif any(f.verdict is not Verdict.ADOPTED for f in mine) and not self._within_horizon(unit.job_id, unit.path):
            self._hold(unit, inflight, "")  # a part not found may have a batch made before the horizon
        elif all(f.verdict is Verdict.UNSENT for f in mine) and not self._partly_sent(unit):
            self._give_back_unsent(unit, inflight)
        elif all(f.verdict is Verdict.UNSENT for f in mine):
            self._hold(unit, inflight, "")
        else:
            self._rebuild(unit, findings, inflight)

    def _partly_sent(self, unit: LostUnit) -> bool:
        why = self.unlabelled.partly_sent(unit)
        if why:
            self._leave(unit.path, why)
        return bool(why)

    def _rebuild(self, unit: LostUnit, findings: dict[Key, Finding], inflight: dict[str, Path]) -> None:
        try:
            if unit.members is None:
                rows = [self.unlabelled.jobs.input_rows(unit, findings, source_name_of(unit.path))]
            else:
                rows = self.unlabelled.jobs.pack_rows(unit, findings, inflight)
        except (DaemonError, OSError) as exc:  # unmatched, or the service failed: the next run tries again
            self._hold(unit, inflight, str(exc))
            return
        for member in unit.members or []:
            inflight.pop(member["job_id"], None)
        self._record(rows)
        for key in unit.keys:
            finding = findings[(unit.job_id, *key)]
            if finding.verdict is Verdict.AWAITS:
                label = f"{key[0]}.{key[1]}"
                self.done.awaiting.append((f"{unit.job_id} part {label}", ", ".join(finding.awaited)))
                log.info("lost_part_deferred", job_id=unit.job_id, part=label, batch_ids=finding.awaited)

    def _hold(self, unit: LostUnit, inflight: dict[str, Path], why: str) -> None:
        """Left where it is (a pack's members too), reported with ``why`` unless that was done."""
        if why:
            self._leave(unit.path, why)
        if unit.members is not None:
            self._settle_members(unit.job_id, unit.members, inflight, give_back=False)

    def _give_back_unsent(self, unit: LostUnit, inflight: dict[str, Path]) -> None:
        """No batch could hold its requests: never sent. Given back like an input of any profile."""
        if unit.members is None:
            self._give_back(unit.job_id, unit.path, source_name_of(unit.path))
        else:
            self._settle_members(unit.job_id, unit.members, inflight, give_back=True)
            shutil.rmtree(unit.path, ignore_errors=True)

    def _adopt_handed_over(self, job_id: str, path: Path, name: str, folder: Path) -> bool:
        try:
            rows = self.builder.handed_over_rows(job_id, path, name, folder)
        except (DaemonError, OSError):
            return False
        if rows is not None:
            self._record([rows])
        return rows is not None

    def _downloads_held(self, name: str, job_id: str) -> Path | None:
        """A results folder of this input holding a shared batch's results not yet merged: it was
        handed its share of a pack whose folder is gone. (An earlier input of the same name left
        its results.jsonl beside its downloads, and the folder tagged with this job id is ours.)"""
        tagged, plain = result_dirs(self.settings, name, job_id)
        for candidate in (tagged, plain):
            names = {p.name for p in candidate.iterdir()} if candidate.is_dir() else set()
            if candidate == plain and RESULTS_NAME in names:
                continue
            if any(n.endswith(DOWNLOAD_ENDINGS) for n in names):
                return candidate
        return None

    def _record(self, rows: list[Rows]) -> None:
        with self.store.transaction():  # a job and its parts land together, or the next run tries again
            for job, parts in rows:
                self.store.add_job(job)
                for part in parts:
                    self.store.add_part(part)
        for job, parts in rows:
            self.done.jobs.append(job.id)
            log.info("job_recovered", job_id=job.id, file=job.source_name, parts=len(parts), kind=job.kind)
        for job, parts in rows:
            for part in parts:
                for batch_id in filter(None, [*part.old_batch_ids.split(","), part.batch_id]):
                    self.done.adopted_batches.append(batch_id)
                    log.info("batch_adopted", job_id=job.id, part=part.label, batch_id=batch_id)

    # returning and leaving --------------------------------------------------------------
    def _return_input(self, job_id: str, path: Path, name: str) -> None:
        """Never submitted: back to the drop zone under its own name (or a free one), claimed anew; to
        its profile's folder, as its name in state/inflight/ says (or, from older versions, as its stray
        uploads show)."""
        folder = profile_folder(self.settings.pending, profile_of_inflight(path) or self._upload_profile(job_id))
        folder.mkdir(exist_ok=True)
        pending = folder / safe_component(name)
        if pending.exists() and same_file(pending, path):  # the claim's link was made, not its unlink
            path.unlink()
            dest = pending
        else:
            dest = free_name(folder, safe_component(name), job_id)
            move_no_clobber(path, dest)
        shutil.rmtree(self.settings.state / folders.PARTS / job_id, ignore_errors=True)
        self._delete_uploads(job_id)
        self.done.returned.append((str(path), str(dest)))
        log.info("input_returned", job_id=job_id, file=name, moved_to=str(dest))

    def _upload_profile(self, job_id: str) -> str:
        """The profile whose service holds this job's uploads (the default one if none is found)."""
        prefix = f"batchd-{job_id}-"
        found = sorted(self.view.profile_of[n] for n in self.view.uploads if n.startswith(prefix))
        return found[0] if found else DEFAULT_PROFILE

    def _delete_uploads(self, job_id: str) -> None:
        """Its files uploaded before the state was lost: no batch uses them, and it is uploaded again."""
        prefix = f"batchd-{job_id}-"
        for upload_name, upload in sorted(self.view.uploads.items()):
            if upload_name.startswith(prefix):
                try:
                    self.services.of(self.view.profile_of.get(upload_name, DEFAULT_PROFILE)).delete_file(upload.id)
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

    def _surely_unsent(self, job_id: str, path: Path, profile: str | None, claimed: float | None = None) -> bool:
        """Whether finding no batch for this job proves it was never sent: it is within the horizon,
        and the service of its profile could be searched (else it is left, reported). ``profile``:
        the one it was claimed for; None (the default profile's or an older version's name) needs
        every profile's service searched. ``claimed``: when its first request was claimed (its id's time)."""
        if not self._within_horizon(job_id, path):
            return False
        unreachable = sorted(n for n in self.unreachable if profile in (None, n))
        if unreachable:
            self._leave(path, self._not_searched(", ".join(unreachable)))
            return False
        unsearchable = [n for n in self.unsearchable if profile in (None, n)]
        if unsearchable:
            names = ", ".join(unsearchable)
            why = f"no batch found, but the service of profile(s) {names} cannot list batches and files"
            self._leave(path, f"{why}: it may have one there; check there, then drop the input again if it has none")
            return False
        return not self._untold_since(path, profile, _claimed_at(job_id) if claimed is None else claimed)

    def _untold_since(self, path: Path, profile: str | None, claimed: float) -> bool:
        """Whether a batch made since ``claimed`` on a service that drops metadata has lost its input
        file: it could be this job's (one made before the claim cannot). If so it is left, reported."""
        untold = [
            f"{batch.id} (profile {name})"
            for name, batches in sorted(self.view.untold.items())
            for batch in batches
            if profile in (None, name) and batch.created_at >= claimed - CLOCK_SKEW
        ]
        if untold:
            self._leave(path, f"no batch found, but the input files of batches {', '.join(untold)} are gone, so "
                        "whose they are cannot be told (the service keeps no metadata): check them, then drop "
                        "the input again if none is its")  # fmt: skip
        return bool(untold)

    @staticmethod
    def _not_searched(profiles: str) -> str:
        return (
            f"the service of profile(s) {profiles} could not be searched now (see above): it may have batches "
            "there, so it is left as it is; run `batchd recover` again once that profile works"
        )

    def _within_horizon(self, job_id: str, path: Path) -> bool:
        """Whether every batch made for this job would be in the listing: it was claimed (or packed)
        after the horizon began. If not, "no batch found" proves nothing and it is left as it is."""
        made = _claimed_at(job_id)
        if made >= self.not_before:
            return True
        day = time.strftime("%Y-%m-%d", time.gmtime(made))
        self._leave(path, f"made on {day}, before the horizon: run `batchd recover --since-days N` reaching back")
        return False

    def _leave(self, what: Path, why: str) -> None:
        self.done.left.append((str(what), why))
        log.warning("recovery_left", item=str(what), reason=why)


def _claimed_at(job_id: str) -> float:
    """When a job (or pack) was made, as its id says (intake.new_job_id)."""
    return float(calendar.timegm(time.strptime(job_id[:16], "%Y%m%dT%H%M%SZ")))


def _tracked_batch_ids(store: Store) -> set[str]:
    ids: set[str] = set()
    for part in store.parts_in(PartState):
        ids.update(filter(None, [part.batch_id, *part.old_batch_ids.split(",")]))
    return ids
