"""``batchd retry NAME --failed``: a new input of only the requests of a finished job that did not succeed.

The lines are the original request lines, byte for byte, read from the archived input (checked
against the size and sha256 recorded when it was claimed); results.jsonl says which of them
failed or never ran, line for line, since it is written in input order. Memory stays flat: the
two files are read in step. The new input appears in the drop zone whole (written under a dot
name the daemon ignores, then linked into place without replacing anything), named after the
original so the user recognises it: ``NAME.retry-failed.jsonl``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from daemon.cli.retry import RequeueError
from daemon.config import Settings
from daemon.intake.claim import profile_folder
from daemon.intake.drop_names import request_stem
from daemon.intake.line_reader import is_blank
from daemon.intake.validation import HashingReader, iter_lines
from daemon.logs import get_logger
from daemon.results.merger import RESULTS_NAME
from daemon.results.outcome import MAY_HAVE_RUN_CODES, SUCCEEDED, error_code, rank
from daemon.state.fileops import atomic_writer
from daemon.state.folders import DB_NAME
from daemon.state.rows import Job
from daemon.state.states import INPUT_KIND, TERMINAL_JOB_STATES, JobState
from daemon.state.store import Store

log = get_logger(__name__)
RETRY_TAG = "retry-failed"
_MAX_NAMES = 1000


@dataclass(frozen=True, slots=True)
class Rerun:
    job_id: str
    source: Path  # the archived input the lines were copied from
    dest: Path  # the new input in the drop zone
    requests: int
    maybe_ran: int = 0  # of them, requests that may have run (and been paid for) without a result


def rerun_failed(settings: Settings, name: str) -> Rerun:
    """Drop a new input holding the failed and not-run requests of the finished job ``name``."""
    job, taken = _finished_job(settings, name)
    source = _archived_input(job)
    base = _base_name(job.source_name)
    folder = profile_folder(settings.pending, job.profile)  # run again on the service it ran on
    folder.mkdir(exist_ok=True)
    tmp = folder / f".{base}.{os.getpid()}.tmp"  # the watcher skips dot names
    try:
        count, maybe_ran = _write_unsuccessful(job, source, Path(str(job.result_dir)) / RESULTS_NAME, tmp)
        if count == 0:
            raise RequeueError(f"every request of {job.source_name} (job {job.id}) succeeded; nothing to retry")
        dest = _link_free_name(folder, tmp, base, taken)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.info("failed_requests_requeued", job_id=job.id, file=dest.name, requests=count, maybe_ran=maybe_ran)
    return Rerun(job.id, source, dest, count, maybe_ran)


def _finished_job(settings: Settings, name: str) -> tuple[Job, set[str]]:
    """The newest input job called ``name`` (or with that id), and every input name jobs used."""
    db = settings.state / DB_NAME
    if not db.exists():
        raise RequeueError(f"no state database at {db}; has `batchd run` been started with this root?")
    store = Store(db, readonly=True)
    try:
        jobs = [j for j in store.jobs() if j.kind == INPUT_KIND]
    finally:
        store.close()
    matches = [j for j in jobs if name in (j.id, j.source_name)]
    if not matches:
        raise RequeueError(f"no job for an input called {name!r}; give its name as dropped or its job id")
    job = matches[-1]
    if job.state not in TERMINAL_JOB_STATES:
        raise RequeueError(
            f"{job.source_name} (job {job.id}) is still {job.state}; retry its failed requests once "
            "`batchd status` shows it finished (or give the job id of an earlier finished run)"
        )
    if job.state == JobState.REJECTED or not job.result_dir:
        raise RequeueError(
            f"{job.source_name} (job {job.id}) was rejected before any request ran; "
            f"fix it and use `batchd retry {job.source_name}`"
        )
    return job, {j.source_name for j in jobs}


def _archived_input(job: Job) -> Path:
    if not job.final_path or not os.path.isfile(job.final_path):
        raise RequeueError(
            f"the archived input of {job.source_name} (job {job.id}) is not at {job.final_path or 'any path'}; "
            "its request lines are needed to send them again"
        )
    return Path(job.final_path)


def _write_unsuccessful(job: Job, source: Path, results: Path, dest: Path) -> tuple[int, int]:
    """Copy the request lines whose result did not succeed; return how many, and how many of them
    may have run without a result (``result_missing``, ``batch_lost``)."""
    count = maybe_ran = 0
    try:
        with open(source, "rb") as raw_in, open(results, "rb") as res, atomic_writer(dest) as out:
            reader = HashingReader(raw_in)
            outcomes = _result_lines(res, results)
            for raw in _request_lines(reader):
                result = next(outcomes, None)
                if not _succeeded(result, raw, results):
                    out.write(raw if raw.endswith(b"\n") else raw + b"\n")
                    count += 1
                    maybe_ran += _may_have_run(result)
            _check_unchanged(job, source, reader)
            if next(outcomes, None) is not None:
                raise RequeueError(f"{results} has more lines than {source} has requests; it is not that input's")
    except FileNotFoundError as exc:
        raise RequeueError(f"cannot read {exc.filename}: the job's results or archived input are gone") from None
    return count, maybe_ran


def _may_have_run(result: dict[str, Any] | None) -> bool:
    return result is not None and error_code(result) in MAY_HAVE_RUN_CODES


def _request_lines(reader: HashingReader) -> Iterator[bytes]:
    for _, raw in iter_lines(reader):
        if not is_blank(raw):  # blank lines were skipped when the input was sent
            yield raw


def _result_lines(fh: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    for line_no, raw in iter_lines(fh):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RequeueError(f"{path} line {line_no} is not JSON; it was changed after batchd wrote it") from None
        if not isinstance(line, dict):
            raise RequeueError(f"{path} line {line_no} is not a JSON object; it was changed after batchd wrote it")
        yield line


def _succeeded(result: dict[str, Any] | None, request: bytes, results: Path) -> bool:
    custom_id = orjson.loads(request).get("custom_id")
    if result is None or result.get("custom_id") != custom_id:
        raise RequeueError(
            f"{results} does not line up with the archived input at custom_id {custom_id!r}; "
            "it was changed after batchd wrote it"
        )
    return rank(result) == SUCCEEDED


def _check_unchanged(job: Job, source: Path, reader: HashingReader) -> None:
    if job.sha256 and (reader.hexdigest() != job.sha256 or (job.size is not None and reader.size != job.size)):
        raise RequeueError(f"{source} changed since batchd sent it; its lines may not be the requests that ran")


def _base_name(source_name: str) -> str:
    """``NAME`` of ``NAME.jsonl`` or of an earlier ``NAME.retry-failed.jsonl``."""
    stem = request_stem(source_name)
    return stem.removesuffix(f".{RETRY_TAG}").lstrip(".") or "input"


def _link_free_name(folder: Path, tmp: Path, base: str, taken: set[str]) -> Path:
    """Link ``tmp`` into ``folder`` as ``NAME.retry-failed.jsonl`` (or ``-2``, ``-3``, ...): never
    over a file waiting there, nor under a name an earlier job used, so runs stay apart."""
    for n in range(1, _MAX_NAMES):
        name = f"{base}.{RETRY_TAG}{'' if n == 1 else f'-{n}'}.jsonl"
        if name in taken:
            continue
        try:
            os.link(tmp, folder / name)
        except FileExistsError:
            continue
        return folder / name
    raise RequeueError(f"no free name for {base}.{RETRY_TAG}.jsonl in {folder}; clear out old retries")
