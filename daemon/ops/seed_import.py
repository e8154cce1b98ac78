"""Migrating from the seed script: import its ``batch_ids.txt`` once, then track those batches.

The script appended ``name:batch_id`` lines (``name`` is the input's file name without
``.jsonl``, and may itself hold colons) and moved each input to ``uploaded_files/``. Each batch is
retrieved (which proves it exists and gives its endpoint and status) and becomes a job of one
part, polled and collected like any other. The original input, if it is still in
``uploaded_files/`` and matches the batch, gives the results their input order (and lets
unfinished requests be resubmitted); otherwise results come in the service's output order.

Crash safety: every job, part and an "imported" fact keyed by the file's SHA-256 are written in
one transaction; only then is the file renamed to ``batch_ids.txt.imported-<time>``. A start
that finds the fact for the file's digest renames it without importing again, and batch ids
already tracked are always skipped.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.errors import AccountError, PermanentError, TransientError
from daemon.intake.claim import new_job_id
from daemon.intake.line_reader import CEILING, LongLine, is_blank, read_lines
from daemon.intake.preparer import result_dir_for
from daemon.logs import get_logger
from daemon.results.merger import custom_id_of
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_service import BatchService
from daemon.service.retrying import in_call
from daemon.state.fileops import atomic_writer, move_no_clobber, safe_component
from daemon.state.folders import PARTS
from daemon.state.rows import Job, Part
from daemon.state.states import TERMINAL_BATCH_STATUSES, JobState, PartOrigin, PartState
from daemon.state.store import Store

log = get_logger(__name__)
SEED_FILE = "batch_ids.txt"
FACT_PREFIX = "seed_import:"
DEFER_WAIT = 300.0  # after the service could not be reached, try the import again this much later
_BATCH_ID = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True, slots=True)
class SeedLine:
    line_no: int
    name: str  # the input's name as the script knew it (without .jsonl)
    batch_id: str


@dataclass(frozen=True, slots=True)
class OrderFile:
    path: Path
    requests: int
    size: int


def parse_seed_file(text: str) -> tuple[list[SeedLine], list[tuple[int, str]]]:
    """The usable lines, and (line number, problem) for every line that is not."""
    entries: list[SeedLine] = []
    problems: list[tuple[int, str]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        # `read` split at the first colon but names may hold colons; batch ids never do.
        name, sep, batch_id = line.rpartition(":")
        if not sep or not name:
            problems.append((line_no, f"not name:batch_id: {line[:200]!r}"))
        elif batch_id == "null":
            problems.append((line_no, f"the script recorded no batch for {name!r} (its upload or create failed)"))
        elif not _BATCH_ID.fullmatch(batch_id):
            problems.append((line_no, f"{batch_id[:100]!r} is not a batch id"))
        else:
            entries.append(SeedLine(line_no, name, batch_id))
    return entries, problems


class SeedImport:
    """Looks for the seed script's file now and then, and imports it on a worker."""

    def __init__(
        self, settings: Settings, store: Store, remote: BatchService, stop: threading.Event, clock: Clock = WALL_CLOCK
    ) -> None:
        self.settings = settings
        self.clock = clock  # the next look and a deferred import's retry are timed by it
        self.store = store
        self.remote = remote
        self.stop = stop
        self.path = settings.root / SEED_FILE
        self._next_look = 0.0

    def due(self, now: float) -> bool:
        if now < self._next_look:
            return False
        self._next_look = now + self.settings.scan_interval
        try:
            st = self.path.stat()
        except OSError:
            return False
        # A file still being written (the script still running, a copy in progress) waits, as in intake.
        return stat.S_ISREG(st.st_mode) and now - st.st_mtime >= self.settings.min_file_age

    def run(self) -> None:
        """Import the file unless its import is already recorded, then rename it out of the way."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        digest = hashlib.sha256(data).hexdigest()
        fact = self.store.fact(FACT_PREFIX + digest)
        if fact is None:
            try:
                fact = self.record(data, digest)
            except (TransientError, AccountError) as exc:
                self._next_look = self.clock.now() + DEFER_WAIT
                log.warning("seed_import_deferred", file=str(self.path), error=str(exc), retry_in=DEFER_WAIT)
                return
        self._rename(float(orjson.loads(fact)["at"]))

    def record(self, data: bytes, digest: str) -> str:
        """Retrieve every listed batch and record them all in one transaction; return the fact."""
        entries, problems = parse_seed_file(data.decode("utf-8", errors="replace"))
        # Copies of the inputs are made first, so the transaction holds the state only briefly.
        prepared = [(entry, batch, self._order(batch, entry)) for entry, batch in self._retrieve_new(entries, problems)]
        now = self.clock.now()
        fact = orjson.dumps({"at": now, "jobs": len(prepared), "skipped": len(problems)}).decode()
        with self.store.transaction():
            jobs = [self._add(entry, batch, order, now) for entry, batch, order in prepared]
            self.store.set_fact(FACT_PREFIX + digest, fact)
        for line_no, problem in sorted(problems):
            log.warning("seed_line_skipped", file=str(self.path), line=line_no, problem=problem)
        log.info("seed_file_imported", file=str(self.path), jobs=len(jobs), skipped=len(problems))
        return fact

    def _retrieve_new(
        self, entries: list[SeedLine], problems: list[tuple[int, str]]
    ) -> list[tuple[SeedLine, BatchInfo]]:
        tracked = _tracked_batch_ids(self.store)
        found: list[tuple[SeedLine, BatchInfo]] = []
        for entry in entries:
            if entry.batch_id in tracked:
                problems.append((entry.line_no, f"batch {entry.batch_id} is already tracked"))
                continue
            tracked.add(entry.batch_id)
            try:
                found.append((entry, self._retrieve(entry.batch_id)))
            except PermanentError as exc:  # e.g. 404: not a batch of this account
                problems.append((entry.line_no, f"batch {entry.batch_id} cannot be read: {exc}"))
        return found

    def _retrieve(self, batch_id: str) -> BatchInfo:
        for attempt in in_call(self.stop):
            with attempt:
                return self.remote.retrieve(batch_id)
        raise TransientError("stopped before the batch could be read")  # pragma: no cover - stop set

    def _order(self, batch: BatchInfo, entry: SeedLine) -> tuple[str, OrderFile | None]:
        """A new job id, and the copy of the original input made under that job's parts folder."""
        job_id = new_job_id()
        original = self.settings.uploaded / safe_component(f"{entry.name}.jsonl")
        return job_id, _order_file(original, self.settings.state / PARTS / job_id, batch)

    def _add(self, entry: SeedLine, batch: BatchInfo, prepared: tuple[str, OrderFile | None], now: float) -> Job:
        job_id, order = prepared
        source_name = f"{entry.name}.jsonl"
        original = self.settings.uploaded / safe_component(source_name)
        total = (batch.request_counts.total if batch.request_counts else 0) or (order.requests if order else 0)
        job = Job(
            job_id,
            source_name,
            str(original),
            str(original) if order else "",  # "" : no input; the collector archives nothing
            JobState.ACTIVE,
            now,
            now,
            result_dir=str(result_dir_for(self.settings, self.store, source_name, job_id)),
            endpoint=batch.endpoint,
            model=batch.model,
            request_count=total or None,
            note=f"imported from {SEED_FILE} line {entry.line_no}",
        )
        self.store.add_job(job)
        self.store.add_part(self._part(job_id, batch, order, total, now))
        return job

    def _part(self, job_id: str, batch: BatchInfo, order: OrderFile | None, total: int, now: float) -> Part:
        size = order.size if order else 0
        state = PartState.FINISHED if batch.status in TERMINAL_BATCH_STATUSES else PartState.SUBMITTED
        return Part(
            job_id,
            0,
            0,
            str(order.path) if order else "",  # "": results are merged in output order
            1,
            total,
            size,
            size // 4,
            state,
            now,
            now,
            file_id=batch.input_file_id,
            batch_id=batch.id,
            batch_status=batch.status,
            batch_json=batch.to_json(),
            submitted_at=float(batch.created_at),
            poll_wait=self.settings.first_poll_after,
            origin=PartOrigin.IMPORTED if order else PartOrigin.IMPORTED_WITHOUT_INPUT,
        )

    def _rename(self, imported_at: float) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(imported_at))
        for n in range(1, 100):
            dest = self.path.with_name(f"{SEED_FILE}.imported-{stamp}" + (f"-{n}" if n > 1 else ""))
            try:
                move_no_clobber(self.path, dest)
            except FileExistsError:
                continue
            except FileNotFoundError:
                return  # renamed already (by a user, or by a run that crashed after the rename)
            log.info("seed_file_renamed", file=str(dest))
            return


def _tracked_batch_ids(store: Store) -> set[str]:
    ids: set[str] = set()
    for part in store.parts_in(PartState):
        ids.update(filter(None, [part.batch_id, *part.old_batch_ids.split(",")]))
    return ids


def _order_file(original: Path, folder: Path, batch: BatchInfo) -> OrderFile | None:
    """A copy of the original input to merge in input order, if it is there and fits the batch."""
    try:
        if not stat.S_ISREG(os.lstat(original).st_mode):
            return None
    except OSError:
        return None
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = folder / "0.0.jsonl"
    order = _copy_requests(original, dest)
    expected = batch.request_counts.total if batch.request_counts else 0
    if order is None or (expected and order.requests != expected):
        dest.unlink(missing_ok=True)
        log.warning("seed_input_unusable", file=str(original), batch_id=batch.id, merge="output order")
        return None
    return order


def _copy_requests(source: Path, dest: Path) -> OrderFile | None:
    """Copy the requests (one per line, each with a unique custom_id); None if any line has none."""
    seen: set[str] = set()
    size = 0
    with open(source, "rb") as src, atomic_writer(dest) as out:
        for _, raw in read_lines(src, CEILING):
            if isinstance(raw, LongLine):
                return None  # no request is that long: not a request file
            if is_blank(raw):
                continue
            custom_id = custom_id_of(raw)
            if custom_id is None or custom_id in seen:
                return None
            seen.add(custom_id)
            line = raw.rstrip(b"\r\n") + b"\n"
            out.write(line)
            size += len(line)
    return OrderFile(dest, len(seen), size)
