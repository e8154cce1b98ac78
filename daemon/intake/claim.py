"""Intake: decide when a file in the drop zone is complete, and claim it atomically.

A file is complete when an event proves it and it has not changed since, or when it has not
changed for ``min_file_age``. A rename into place proves it at once. A close proves it only once
the file has stayed as it was for ``settle_seconds``: a producer that appends (``echo ... >>`` in
a loop) closes the file after every line, and claiming at the first close would cut its input in
pieces. Claiming moves it out of the drop zone into state/inflight/<job id>.jsonl (a link and an
unlink), recorded in the state before and after.

The drop zone is the top of pending_upload/ (the default provider profile) and one subfolder per
configured profile, one level deep: a file in ``pending_upload/NAME/`` becomes a job of profile
NAME. Files are known by their name relative to the drop zone (``NAME/file.jsonl``), so the same
name in two folders is two files. Any other subfolder is reported once and left alone.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon import crashpoints
from daemon.clock import WALL_CLOCK, Clock
from daemon.intake.drop_names import ignored_reason, is_being_written, is_request_file
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.state.fileops import fsync_dir, relink, safe_component, same_file
from daemon.state.folders import INFLIGHT
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store

log = get_logger(__name__)
__all__ = ["Intake", "is_request_file"]  # where the CLI has always imported is_request_file from
# With a recent mtime but an event-less history, re-check at least this long before claiming.
SETTLE_SECONDS = 1.0
# Two inputs of one name claimed at most this far apart may be one appending producer's file cut in two.
CONTINUATION_WINDOW = 60.0
CONTINUATION_HINT = (
    "a producer that appends line by line with pauses longer than settle_seconds should write "
    "under a dot-name (or another extension) and rename the file into place when it is complete"
)


@dataclass(slots=True)
class Candidate:
    signature: tuple[int, int, int]  # (inode, size, mtime_ns)
    stable_since: float  # monotonic time the signature was first seen unchanged
    proven: tuple[int, int, int] | None = None  # signature at the last completion event
    settle: bool = False  # the last proof was a close: it holds once the file was quiet for settle_seconds
    # Created by a link with an old mtime (`batchd retry`, `ln`): no close or rename will ever prove it,
    # so it is looked at closely, like a settling file, and claimed once quiet for SETTLE_SECONDS.
    linked: bool = False


def inflight_name(job_id: str, source_name: str, profile: str = DEFAULT_PROFILE) -> str:
    """The claimed input's name under state/inflight/: its job id (with ``@PROFILE@`` for a profile
    other than the default, else ``_``), then the name it was dropped with, so ``batchd recover`` can give it
    back under that name, to its profile's folder, if the state is lost."""
    routed = "_" if profile == DEFAULT_PROFILE else f"@{profile}@"  # a profile name may hold "_", never "@"
    return f"{job_id}{routed}{safe_component(source_name)}"


def profile_folder(pending: Path, profile: str) -> Path:
    """Where a file is dropped to run on ``profile``: the top of the drop zone for the default one."""
    return pending if profile == DEFAULT_PROFILE else pending / profile


def new_job_id() -> str:
    """Sortable by time, unique across restarts and machines: 20261121T141500Z-1a2b3c4d5e6f."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(6)


class Intake:
    def __init__(
        self,
        pending: Path,
        state_dir: Path,
        store: Store,
        min_file_age: float,
        settle_seconds: float = 0.0,
        clock: Clock = WALL_CLOCK,
        *,
        profiles: set[str] | None = None,
    ) -> None:
        self.pending = pending
        self.profiles = frozenset(profiles or ())  # the subfolders files are claimed from, one per profile
        self.inflight = state_dir / INFLIGHT
        self.store = store
        self.min_file_age = min_file_age
        self.settle_seconds = settle_seconds
        # Quiet periods on the monotonic clock (a wall-clock jump must not claim a file early); a
        # test's clock drives both.
        self._mono: Callable[[], float] = clock.monotonic
        self._wall: Callable[[], float] = clock.now
        self._candidates: dict[str, Candidate] = {}
        self._proofs: dict[str, bool] = {}  # name: whether a close (not only a rename) proved it
        self._settling: set[str] = set()  # closed files looked at again on every pass until quiet
        self._created: set[str] = set()  # names a creation event announced since the last look
        self._recent: dict[str, tuple[float, str]] = {}  # name: (wall time, job id) of its last claim
        self._unrecordable: set[str] = set()  # names already reported as not UTF-8
        self._unknown_folders: set[str] = set()  # subfolders already reported as no profile's
        self._ignored: set[str] = set()  # names already reported as not request files

    def relative(self, path: Path) -> str | None:
        """``path``'s name in the drop zone (``file.jsonl``, ``NAME/file.jsonl``), or None if outside it."""
        if path.parent == self.pending:
            return path.name
        if path.parent.parent == self.pending and path.parent.name in self.profiles:
            return f"{path.parent.name}/{path.name}"
        return None

    def note(self, path: Path, *, complete: bool, closed: bool = False) -> str | None:
        """Record a watcher hint (a completion proof is checked against the file at the next look);
        the file's name in the drop zone, None if it is not in the drop zone."""
        name = self.relative(path)
        if name is not None and is_request_file(path.name):
            if complete:
                self._proofs[name] = self._proofs.get(name, False) or closed
            else:
                self._created.add(name)
        return name

    def settling(self) -> dict[str, int]:
        """The closed files waiting to be quiet for settle_seconds, with the size last seen."""
        return {n: self._candidates[n].signature[1] for n in list(self._settling) if n in self._candidates}

    def ready_files(self, names: list[str] | None = None) -> list[Path]:
        """Look at the drop zone (or just ``names`` in it, and the files still settling) and return
        the files complete now."""
        now_mono, now_wall = self._mono(), self._wall()
        seen = self._list() if names is None else self._hinted(names)
        ready = [self.pending / n for n in seen if self._is_ready(n, now_mono, now_wall)]
        if names is None:  # forget files that went away
            for gone in set(self._candidates) - set(seen):
                del self._candidates[gone]
                self._settling.discard(gone)
        return ready

    def _hinted(self, names: list[str]) -> list[str]:
        wanted = {n for n in names if is_request_file(os.path.basename(n))}
        return sorted(wanted | self._proofs.keys() | self._settling)

    def _list(self) -> list[str]:
        try:
            entries = list(os.scandir(self.pending))
        except OSError as exc:
            log.error("scan_failed", folder=str(self.pending), error=exc.strerror)
            return []
        names = [e.name for e in entries if is_request_file(e.name)]
        self._report_ignored([e for e in entries if not e.is_dir(follow_symlinks=False)], "")
        for folder in self._profile_folders(entries):
            names += self._scan(self.pending / folder, f"{folder}/")
        return sorted(names)

    def _scan(self, folder: Path, prefix: str) -> list[str]:
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.error("scan_failed", folder=str(folder), error=exc.strerror)
            return []
        self._report_ignored(entries, prefix)
        return [prefix + e.name for e in entries if is_request_file(e.name)]

    def _report_ignored(self, entries: list[os.DirEntry[str]], prefix: str) -> None:
        """Say once per name why an entry that is no request file (nor being written) is left alone."""
        for entry in entries:
            name = prefix + entry.name
            if is_request_file(entry.name) or is_being_written(entry.name) or name in self._ignored:
                continue
            self._ignored.add(name)
            shown = os.fsencode(name).decode("utf-8", "backslashreplace")
            reason = ignored_reason(shown.rpartition("/")[2], entry.is_dir(follow_symlinks=False))
            log.warning("file_ignored", file=shown, reason=reason)

    def _profile_folders(self, entries: list[os.DirEntry[str]]) -> list[str]:
        """The profile subfolders present; any other (not a dot-folder) is reported once, left alone."""
        folders = []
        for entry in entries:
            name = entry.name
            if is_request_file(name) or name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            if name in self.profiles:
                folders.append(name)
            elif name not in self._unknown_folders:
                self._unknown_folders.add(name)
                shown = os.fsencode(name).decode("utf-8", "backslashreplace")
                log.warning("unknown_profile_folder", folder=shown, hint=_unknown_folder_hint(shown))
        return sorted(folders)

    def _is_ready(self, name: str, now_mono: float, now_wall: float) -> bool:
        if not _is_utf8(name):
            self._report_unrecordable(name)
            return False
        created = name in self._created
        self._created.discard(name)
        try:
            st = os.lstat(self.pending / name)
        except OSError:
            self._candidates.pop(name, None)
            self._settling.discard(name)
            return False
        if not stat.S_ISREG(st.st_mode):
            return True  # directories and symlinks are claimed only to be rejected with a report
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        cand = self._candidates.get(name)
        if cand is None or cand.signature != signature:
            cand = self._candidates[name] = Candidate(signature, now_mono)
        if name in self._proofs:
            cand.proven, cand.settle = signature, self._proofs.pop(name)
        quiet = now_mono - cand.stable_since
        old = now_wall - st.st_mtime_ns / 1e9
        if created:
            cand.linked = old >= self.min_file_age
        ready = (
            (cand.proven == signature and (not cand.settle or quiet >= self.settle_seconds))
            or quiet >= self.min_file_age
            or (old >= self.min_file_age and quiet >= min(SETTLE_SECONDS, self.min_file_age))
        )
        self._note_settling(name, cand, ready)
        return ready

    def _note_settling(self, name: str, cand: Candidate, ready: bool) -> None:
        # A closed file no event will mention again is looked at on every pass until it is quiet.
        if (cand.settle or cand.linked) and not ready:
            self._settling.add(name)
        else:
            self._settling.discard(name)

    def _report_unrecordable(self, name: str) -> None:
        # The state stores names as UTF-8 text; claiming such a file would fail on every pass.
        if name not in self._unrecordable:
            self._unrecordable.add(name)
            shown = os.fsencode(name).decode("utf-8", "backslashreplace")
            log.error("file_name_not_utf8", file=shown, hint="rename it to a UTF-8 name; batchd leaves it in place")

    def claim_all(self, paths: list[Path]) -> list[Job]:
        """Claim many files with two commits and one fsync per folder, not two of each per file:
        a thousand files dropped at once are in our custody in a fraction of a second."""
        if not paths:
            return []
        now = time.time()
        ids = [new_job_id() for _ in paths]
        jobs = [
            Job(
                i,
                p.name,
                str(p),
                str(self.inflight / inflight_name(i, p.name, self._profile_of(p))),
                JobState.CLAIMING,
                now,
                now,
                profile=self._profile_of(p),
            )
            for i, p in zip(ids, paths, strict=True)
        ]
        with self.store.transaction():  # intent first: a crash after a rename still finds the file
            for job in jobs:
                self.store.add_job(job)
        moved = [job for job in jobs if self._move(job)]
        kept = {job.id for job in moved}  # ids, not jobs: comparing dataclasses made this quadratic
        for folder in sorted({Path(job.source_path).parent for job in moved} | {self.pending}):
            fsync_dir(folder)
        fsync_dir(self.inflight)
        crashpoints.reach("claimed")
        with self.store.transaction():
            for job in jobs:
                if job.id in kept:
                    self.store.update_job(job.id, state=JobState.CLAIMED)
                else:
                    self.store.delete_job(job.id)
        for job in moved:
            job.state = JobState.CLAIMED
            name = self.relative(Path(job.source_path)) or job.source_name
            self._candidates.pop(name, None)
            self._settling.discard(name)
            log.info("file_claimed", file=job.source_name, job_id=job.id, profile=job.profile)
            self._warn_continuation(job, name)
        return moved

    def _profile_of(self, path: Path) -> str:
        return path.parent.name if path.parent != self.pending else DEFAULT_PROFILE

    def _warn_continuation(self, job: Job, name: str) -> None:
        """Say so when an input of the same name was claimed a moment ago: it is likely the rest of
        a file its producer kept appending to after a pause longer than settle_seconds."""
        now = self._wall()
        while self._recent:  # oldest first (insertion order): forget claims outside the window
            first = next(iter(self._recent))
            if now - self._recent[first][0] <= CONTINUATION_WINDOW:
                break
            del self._recent[first]
        previous = self._recent.pop(name, None)
        self._recent[name] = (now, job.id)
        if previous is not None:
            log.warning(
                "input_may_be_continuation",
                file=job.source_name,
                job_id=job.id,
                previous_job_id=previous[1],
                seconds_apart=round(now - previous[0], 1),
                hint=CONTINUATION_HINT,
            )

    def _move(self, job: Job) -> bool:
        """Move the input into our custody (a link and an unlink: see fileops.relink); False if it vanished."""
        try:
            relink(Path(job.source_path), Path(job.inflight_path), "claim_linked")
        except FileNotFoundError:
            log.warning("file_vanished", file=job.source_name, job_id=job.id)
            return False
        return True


def _unknown_folder_hint(name: str) -> str:
    return (
        f"pending_upload/{name}/ names no provider profile, so its files are left alone; add a "
        f"[providers.{name}] table to the config (and restart), or move the files to the top of pending_upload/"
    )


def _is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def recover_claims(store: Store) -> None:
    """Finish claims a crash interrupted: the file is either still in the drop zone or ours."""
    for job in store.jobs([JobState.CLAIMING]):
        if os.path.lexists(job.inflight_path):
            _finish_unlink(Path(job.source_path), Path(job.inflight_path))
            store.update_job(job.id, state=JobState.CLAIMED)
            log.info("claim_recovered", file=job.source_name, job_id=job.id)
        else:
            # The rename never happened; the file is still in the drop zone and will be claimed again.
            store.delete_job(job.id)


def _finish_unlink(source: Path, inflight: Path) -> None:
    """A crash between the claim's link and unlink left the input in both places: keep ours only.
    A different file under the same name (a new drop) is left alone."""
    if os.path.lexists(source) and same_file(source, inflight):
        os.unlink(source)
        fsync_dir(source.parent)
