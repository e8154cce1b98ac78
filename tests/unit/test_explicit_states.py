"""What older versions told from paths, notes and made-up batch statuses is recorded in columns of
its own (schema 5): each part's origin and outcome, the operator's cancel and abandon. Old rows
get them from what they looked like; `batchd status` shows them."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from daemon.cli.status import job_rows
from daemon.config import CANCEL_NOTE, Settings
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.state import folders, schema
from daemon.state.job_endings import abandon_note, shown_note
from daemon.state.rows import Job, Part
from daemon.state.states import (
    ORIGIN_MOVES,
    PACK_KIND,
    ForbiddenMoveError,
    JobState,
    PartOrigin,
    PartOutcome,
    PartState,
)
from daemon.state.store import Store
from tests.support import request_file

V5_COLUMNS = (
    ",\n    abandon_requested_at REAL,\n    abandon_after_cancel INTEGER NOT NULL DEFAULT 0",
    ",\n    origin TEXT NOT NULL DEFAULT 'own_file',\n    outcome TEXT",
)
V6_COLUMN = ",\n    profile TEXT NOT NULL DEFAULT 'default'"  # schema 6: a version 4 database lacks it too
ABANDONED_AT = 1_767_323_045.0  # 2026-01-02 03:04:05 UTC
OLD_ABANDON = "abandoned by the operator at 2026-01-02 03:04:05 UTC"


def _v4_database(path: Path) -> None:
    """A database as version 4 left it: its rows told these things only by their paths, notes and statuses."""
    old = schema._SCHEMA
    for columns in (*V5_COLUMNS, V6_COLUMN):
        assert columns in old
        old = old.replace(columns, "")
    conn = sqlite3.connect(path)
    conn.executescript(old + "PRAGMA user_version = 4;")
    jobs = [  # id, kind, inflight_path, note
        ("in", "input", "/s/inflight/in.jsonl", None),
        ("held", "input", "/s/inflight/held.jsonl", None),
        ("pack", PACK_KIND, "", None),
        ("seed", "input", "/r/uploaded_files/seed.jsonl", "imported from batch_ids.txt line 1"),
        ("bare", "input", "", CANCEL_NOTE),  # a cancel overwrote the import note
        ("gone", "input", "/s/inflight/gone.jsonl", OLD_ABANDON),
        ("waits", "input", "/s/inflight/waits.jsonl", OLD_ABANDON + "; its batches were cancelled first"),
    ]
    for job_id, kind, inflight, note in jobs:
        conn.execute(
            "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, note, kind, cancel_requested,"
            " created_at, updated_at) VALUES (?, ?, '', ?, 'active', ?, ?, ?, 0, 5)",
            (job_id, f"{job_id}.jsonl", inflight, note, kind, note == CANCEL_NOTE),
        )
    seen = orjson.dumps({"id": "batch_l", "status": "in_progress"}).decode()
    parts = [  # job, segment, path, batch_id, batch_status, batch_json
        ("in", 0, "/s/parts/in/0.jsonl", "batch_a", "completed", None),
        ("in", 1, "/s/parts/in/1.jsonl", None, "rejected", None),
        ("in", 2, "/s/parts/in/2.jsonl", "batch_l", "lost", seen),
        ("in", 3, "/s/parts/in/3.jsonl", "batch_c", "cancelled", None),  # the service cancelled it
        ("in", 4, "/s/parts/in/4.jsonl", None, "cancelled", None),  # batchd cancelled it before any batch
        ("in", 5, "/s/parts/in/5.jsonl", "batch_g", "abandoned", '{"id": "batch_g"}'),
        ("held", 0, "/s/inflight/held.jsonl", None, None, None),
        ("pack", 0, "/s/packs/pack/0.jsonl", "batch_p", "in_progress", None),
        ("seed", 0, "/s/parts/seed/0.0.jsonl", "batch_s", "completed", None),
        ("bare", 0, "", "batch_b", "completed", None),
    ]
    for job_id, segment, file, batch_id, status, batch_json in parts:
        conn.execute(
            "INSERT INTO parts (job_id, segment, attempt, path, first_line, request_count, byte_size, est_tokens,"
            " state, batch_id, batch_status, batch_json, created_at, updated_at)"
            " VALUES (?, ?, 0, ?, 1, 1, 1, 1, 'downloaded', ?, ?, ?, 0, 0)",
            (job_id, segment, file, batch_id, status, batch_json),
        )
    conn.commit()
    conn.close()


def _parts(store: Store) -> dict[str, Part]:
    return {f"{p.job_id}.{p.segment}": p for ps in store.parts_by_job().values() for p in ps}


def test_a_version_4_database_gets_origins_outcomes_and_the_abandon_from_what_its_rows_show(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    _v4_database(db)
    store = Store(db)
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION >= 5
        parts = _parts(store)
        origins = {key: p.origin for key, p in parts.items() if p.segment == 0}
        assert origins == {
            "in.0": PartOrigin.OWN_FILE,
            "held.0": PartOrigin.HELD_INPUT,
            "pack.0": PartOrigin.PACK,
            "seed.0": PartOrigin.IMPORTED,
            "bare.0": PartOrigin.IMPORTED_WITHOUT_INPUT,
        }
        endings = {key: (p.outcome, p.batch_status) for key, p in parts.items() if p.job_id == "in"}
        assert endings == {
            "in.0": (None, "completed"),
            "in.1": (PartOutcome.REFUSED, None),
            "in.2": (PartOutcome.LOST, "in_progress"),  # what the service last said, from the stored batch
            "in.3": (None, "cancelled"),
            "in.4": (PartOutcome.CANCELLED, None),
            "in.5": (PartOutcome.ABANDONED, None),  # a stored batch without a status says nothing
        }
        assert [parts[f"in.{n}"].shown_status for n in range(6)] == [
            "completed", "rejected", "lost", "cancelled", "cancelled", "abandoned",
        ]  # fmt: skip
        jobs = {j.id: j for j in store.jobs()}
        assert (jobs["gone"].abandon_requested_at, jobs["gone"].abandon_after_cancel) == (ABANDONED_AT, False)
        assert (jobs["waits"].abandon_requested_at, jobs["waits"].abandon_after_cancel) == (ABANDONED_AT, True)
        assert [j.id for j in jobs.values() if j.abandoned] == ["gone", "waits"]
        assert store.open_abandoned_job_ids() == ["gone", "waits"]
        assert abandon_note(jobs["waits"]) == jobs["waits"].note, "the note people read is unchanged"
        assert jobs["bare"].cancel_requested and not jobs["in"].cancel_requested
    finally:
        store.close()


def test_status_reads_a_version_4_database_before_the_daemon_migrated_it(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    _v4_database(db)
    store = Store(db, readonly=True)
    try:
        parts = _parts(store)
        assert [parts[f"in.{n}"].shown_status for n in range(6)] == [
            "completed", "rejected", "lost", "cancelled", "cancelled", "abandoned",
        ]  # fmt: skip
        assert parts["in.1"].refused and parts["in.2"].outcome == PartOutcome.LOST
        assert parts["bare.0"].imported_without_input
        jobs = {j.id: j for j in store.jobs()}
        assert jobs["waits"].abandoned and jobs["waits"].abandon_after_cancel and not jobs["in"].abandoned
        rows = {row["job_id"]: row for row in job_rows(store)}
        assert rows["gone"]["note"] == OLD_ABANDON
    finally:
        store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "db.sqlite3")
    db.add_job(Job("j1", "a.jsonl", "/p/a.jsonl", "/s/a.jsonl", JobState.ACTIVE, 0.0, 0.0))
    yield db
    db.close()


@pytest.mark.parametrize(("now", "to"), list(itertools.product(PartOrigin, PartOrigin)))
def test_a_part_changes_its_origin_only_as_the_table_allows(store: Store, now: PartOrigin, to: PartOrigin) -> None:
    part = store.add_part(Part("j1", 0, 0, "/s/a.jsonl", 1, 1, 1, 1, PartState.WAITING, 0.0, 0.0, origin=now))
    if to == now or to in ORIGIN_MOVES[now]:
        store.update_part(part.id, origin=to, path="/s/parts/j1/0.jsonl")
        assert (store.part(part.id).origin, store.part(part.id).path) == (to, "/s/parts/j1/0.jsonl")
    else:
        with pytest.raises(ForbiddenMoveError, match=f"part {part.id} may not change its origin from {now} to {to}"):
            store.update_part(part.id, origin=to, path="/s/parts/j1/0.jsonl")
        assert (store.part(part.id).origin, store.part(part.id).path) == (now, "/s/a.jsonl")


def test_the_service_status_column_holds_only_what_the_service_said() -> None:
    """No step writes a batch status of its own making: those are outcomes now."""
    kwarg = r"batch_status=(?!None\b|batch\.status\b|last\.batch_status\b)\S+"
    made_up = re.compile(rf"{kwarg}|batch_status\s*=\s*[\"']")
    daemon = Path(__file__).resolve().parents[2] / "daemon"
    found = [
        f"{path.name}: {m.group(0)}"
        for path in daemon.rglob("*.py")
        if "emulator" not in path.parts
        for m in made_up.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_operator_requests_are_flags_and_status_derives_the_note(store: Store) -> None:
    assert shown_note(store.job("j1")) is None
    store.update_job("j1", cancel_requested=True)
    assert (store.job("j1").note, shown_note(store.job("j1"))) == (None, CANCEL_NOTE)
    store.update_job("j1", abandon_requested_at=ABANDONED_AT, abandon_after_cancel=True)
    job = store.job("j1")
    assert job.note is None and job.abandoned
    assert shown_note(job) == OLD_ABANDON + "; its batches were cancelled first", "an abandon takes over the cancel"
    row = job_rows(store)[0]
    assert (row["cancel_requested"], row["abandon_requested_at"], row["note"]) == (True, ABANDONED_AT, shown_note(job))


def _claimed(settings: Settings, store: Store, name: str, text: str) -> Job:
    inflight = settings.state / folders.INFLIGHT / f"job-{name}"
    inflight.write_text(text)
    now = time.time()
    job = Job(f"job-{name}", name, str(settings.pending / name), str(inflight), JobState.CLAIMED, now, now)
    store.add_job(job)
    return job


def _only(store: Store, job: Job) -> Part:
    (part,) = store.parts(job.id)
    return part


def test_parts_record_their_origin_where_they_are_made(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        big = request_file(settings.pack_inputs_up_to + 1)
        jobs = [_claimed(settings, store, f"{n}.jsonl", request_file(2)) for n in "ab"]
        jobs.append(_claimed(settings, store, "big.jsonl", big))
        prepare_jobs(settings, store, jobs)
        assert [_only(store, j).origin for j in jobs] == [PartOrigin.HELD_INPUT] * 2 + [PartOrigin.OWN_FILE]
        Packer(settings, store, batch_limits(settings), lambda: None).run()
        (pack,) = [j for j in store.jobs() if j.kind == PACK_KIND]
        assert _only(store, pack).origin == PartOrigin.PACK
        assert [_only(store, j).origin for j in jobs[:2]] == [PartOrigin.HELD_INPUT] * 2, "packed, still held"
        rows = {row["file"]: row for row in job_rows(store)}
        assert [rows[n]["origins"] for n in ("a.jsonl", "big.jsonl", pack.source_name)] == [
            ["held_input"], ["own_file"], ["pack"],
        ]  # fmt: skip
    finally:
        store.close()


def test_a_held_input_that_goes_alone_gets_a_part_file_and_its_origin_says_so(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        a = _claimed(settings, store, "a.jsonl", request_file(2))
        other = request_file(2).replace("gpt-4o-mini", "gpt-4o")  # another model: no company in the pack
        b = _claimed(settings, store, "b.jsonl", other)
        prepare_jobs(settings, store, [a, b])
        assert _only(store, a).origin == PartOrigin.HELD_INPUT
        Packer(settings, store, batch_limits(settings), lambda: None).run()
        part = _only(store, a)
        assert (part.state, part.origin) == (PartState.READY, PartOrigin.OWN_FILE)
        assert Path(part.path).read_text() == request_file(2) and part.path != a.inflight_path
    finally:
        store.close()


def test_metrics_count_a_part_batchd_ended_under_the_word_reports_show(store: Store) -> None:
    def add(segment: int, status: str | None, outcome: PartOutcome | None) -> None:
        part = Part("j1", segment, 0, "p", 1, 1, 1, 1, PartState.DOWNLOADED, 0.0, 0.0, batch_id=f"batch_{segment}")
        part.batch_status, part.outcome = status, outcome
        store.add_part(part)

    add(0, "in_progress", PartOutcome.LOST)  # last seen running; the service then forgot it
    add(1, "completed", None)
    add(2, None, None)  # created, never polled
    add(3, "in_progress", PartOutcome.ABANDONED)
    assert store.batch_status_counts() == {"lost": 1, "completed": 1, "abandoned": 1}
