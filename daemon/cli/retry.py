"""``batchd retry NAME``: move a fixed input from failed/ back into the drop zone.

Safe while the daemon runs: the input moves with one no-clobber link-and-unlink (it appears in
the drop zone whole, and never replaces a file waiting there), and the daemon claims it like any
new file. The stale report is kept, moved under failed/retried/, so nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.intake.claim import is_request_file, profile_folder
from daemon.intake.estimates import estimate_file
from daemon.intake.preparer import batch_limits
from daemon.intake.reports import report_path, validation_lines, wrapped_at_intake
from daemon.logs import get_logger
from daemon.providers import DEFAULT_PROFILE
from daemon.state.fileops import free_name, move_no_clobber
from daemon.state.folders import DB_NAME
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store

log = get_logger(__name__)
RETRIED = "retried"  # under failed/: reports of inputs that were sent back to the drop zone
_FAILED_STATES = (JobState.FAILED, JobState.REJECTED)
_SHOWN = 10  # problems and candidate names listed in an error


class RequeueError(DaemonError):
    """The input cannot be sent back as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Requeued:
    source: Path  # where it was, in failed/
    dest: Path  # where it is now, in the drop zone
    report: Path | None  # where the stale report went


def requeue(settings: Settings, name: str, *, force: bool = False) -> Requeued:
    """Move the failed input called ``name`` (its name in failed/, its original name or its job id)."""
    source, job = _find(settings, name)
    if not force:
        _check_fixed(source, settings, job.profile if job is not None else DEFAULT_PROFILE)
    dest = _destination(settings, source, job)
    try:
        move_no_clobber(source, dest)
    except FileExistsError:
        raise _pending_clash(settings, dest) from None
    _announce(dest)
    report = _archive_report(settings, source)
    log.info("input_requeued", file=dest.name, source=str(source), job_id=job.id if job else None)
    return Requeued(source, dest, report)


def _announce(dest: Path) -> None:
    """Tell the daemon's watcher the input is whole. The move is a link, which the kernel reports as a
    creation only: a file fixed seconds ago then waited for min_file_age and the next rescan (up to
    10 s). Closing it once opened for writing (nothing written, its mtime unchanged) is the close event
    of a writer that is done. Without write access (an operator's retry) the daemon's rescan finds it."""
    with contextlib.suppress(OSError):
        os.close(os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK))


def _find(settings: Settings, name: str) -> tuple[Path, Job | None]:
    given = Path(name)
    if len(given.parts) > 1:
        if given.absolute().parent.resolve() != settings.failed.resolve():
            raise RequeueError(f"{name} is not in {settings.failed}; give the name of a file in failed/")
        name = given.name
    if name.endswith(".report.txt"):
        raise RequeueError(f"{name} is a report; retry the input it describes: {name.removesuffix('.report.txt')}")
    jobs = _failed_jobs(settings)
    path = settings.failed / name
    if os.path.lexists(path):
        return _regular(path), next((j for j in jobs if j.final_path == str(path)), None)
    matches = [j for j in jobs if name in (j.id, j.source_name) and j.final_path and os.path.lexists(j.final_path)]
    if len(matches) == 1:
        return _regular(Path(str(matches[0].final_path))), matches[0]
    if matches:
        listed = ", ".join(f"{Path(str(j.final_path)).name} (job {j.id})" for j in matches[:_SHOWN])
        raise RequeueError(f"{name!r} matches several failed inputs: {listed}; retry one by its name in failed/")
    raise RequeueError(f"no input called {name!r} in {settings.failed}; {_what_is_there(settings)}")


def _failed_jobs(settings: Settings) -> list[Job]:
    """The jobs that ended in failed/, if this root has a state database (it is only read)."""
    db = settings.state / DB_NAME
    if not db.exists():
        return []
    store = Store(db, readonly=True)
    try:
        return store.jobs(_FAILED_STATES)
    finally:
        store.close()


def _regular(path: Path) -> Path:
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise RequeueError(f"{path} is not a regular file (a link or a folder); put the fixed file there instead")
    return path


def _what_is_there(settings: Settings) -> str:
    names = sorted(_inputs(settings.failed))
    if not names:
        return "failed/ holds no inputs"
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return "failed/ holds: " + ", ".join(names[:_SHOWN]) + more


def _inputs(folder: Path) -> Iterator[str]:
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not entry.name.endswith(".report.txt"):
                yield entry.name


def _check_fixed(source: Path, settings: Settings, profile: str) -> None:
    """Refuse an input that would only be rejected again on its profile (whose line shape may be
    Anthropic's, whose split_by_model may let several models pass), and say what is still wrong."""
    try:
        findings = estimate_file(source, batch_limits(settings, profile), {}).findings  # reads a .jsonl.gz too
    except (OSError, EOFError, zlib.error) as exc:
        raise RequeueError(f"cannot read {source}: {exc}; give batchd's user read permission") from None
    if findings.ok or (settings.wraps_bare_bodies(profile) and wrapped_at_intake(findings)):
        return
    lines = validation_lines(findings, str(source))[:_SHOWN]
    listed = "\n  ".join(lines)
    raise RequeueError(
        f"{source} still has {findings.problem_count} problem(s); fix them first "
        f"(or use --force to send it anyway):\n  {listed}"
    )


def _destination(settings: Settings, source: Path, job: Job | None) -> Path:
    # The name the user dropped, not failed/'s job-tagged name, so results land under it again.
    name = job.source_name if job is not None else source.name
    if not is_request_file(name):
        name = source.name
    if not is_request_file(name):
        raise RequeueError(
            f"{name} is not a name batchd picks up (it must end in .jsonl, in any letter case, or .jsonl.gz, "
            "and not start with a dot)"
        )
    folder = settings.pending if job is None else profile_folder(settings.pending, job.profile)
    folder.mkdir(exist_ok=True)  # a job of another profile runs again on the service it ran on
    dest = folder / name
    if os.path.lexists(dest):
        raise _pending_clash(settings, dest)
    return dest


def _pending_clash(settings: Settings, dest: Path) -> RequeueError:
    return RequeueError(
        f"{dest.name} is already waiting in {settings.pending}; let batchd claim it first "
        "(see `batchd status`), or rename one of the two"
    )


def _archive_report(settings: Settings, source: Path) -> Path | None:
    report = report_path(source)
    if not report.exists():
        return None
    folder = settings.failed / RETRIED
    folder.mkdir(exist_ok=True)
    dest = free_name(folder, report.name, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    move_no_clobber(report, dest)
    return dest
