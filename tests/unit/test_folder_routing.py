"""Routing by folder: a file in pending_upload/NAME/ becomes a job of provider profile NAME, one at
the top a job of the default profile; any other subfolder is reported once and left alone. The
profile is recorded on the job (schema 6); a version 5 database's jobs all get `default`."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.cli.status import job_rows, render_table
from daemon.config import Settings
from daemon.errors import AccountError, CredentialError
from daemon.intake.claim import Intake
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.providers import parse_profile
from daemon.service.holds import Holds
from daemon.service.profile_services import ProfileServices, connect_profiles, report_unconfigured
from daemon.state import folders, schema
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Store
from tests.support import FakeClock, request_file, request_line

MIN_AGE = 1.0
PROFILES = {"default", "azure", "groq"}


@pytest.fixture(name="setup")
def setup_fixture(tmp_path: Path) -> Iterator[tuple[Intake, Store, FakeClock]]:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    clock = FakeClock()
    yield Intake(settings.pending, settings.state, store, MIN_AGE, 0.0, clock, profiles=PROFILES), store, clock
    store.close()


def _write(intake: Intake, relative: str, cid: str = "a") -> Path:
    path = intake.pending / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(request_line(cid) + "\n")
    return path


def _ready(intake: Intake, clock: FakeClock) -> list[str]:
    intake.ready_files()  # first look: each file's signature is noted
    clock.advance(MIN_AGE + 0.1)
    return sorted(str(p.relative_to(intake.pending)) for p in intake.ready_files())


def test_files_in_profile_folders_become_jobs_of_that_profile(setup: tuple[Intake, Store, FakeClock]) -> None:
    intake, store, clock = setup
    for relative in ("top.jsonl", "azure/one.jsonl", "groq/one.jsonl", "azure/top.jsonl"):
        _write(intake, relative)
    ready = _ready(intake, clock)
    assert ready == ["azure/one.jsonl", "azure/top.jsonl", "groq/one.jsonl", "top.jsonl"]
    jobs = intake.claim_all([intake.pending / r for r in ready])
    claimed = {(Path(j.source_path).parent.name, j.source_name): j.profile for j in jobs}
    assert claimed == {
        ("azure", "one.jsonl"): "azure",
        ("azure", "top.jsonl"): "azure",
        ("groq", "one.jsonl"): "groq",
        (intake.pending.name, "top.jsonl"): "default",
    }
    assert {store.job(j.id).profile for j in jobs} == {"azure", "groq", "default"}  # recorded, not only in memory
    assert len({j.inflight_path for j in jobs}) == 4  # one name in two folders: two inputs, neither overwritten
    assert not list((intake.pending / "azure").iterdir())


def test_only_one_level_and_no_dot_folders(setup: tuple[Intake, Store, FakeClock]) -> None:
    intake, _, clock = setup
    _write(intake, "azure/deep/x.jsonl")
    _write(intake, ".hidden/x.jsonl")
    _write(intake, "azure/.writing.jsonl")
    assert _ready(intake, clock) == []


def test_an_unknown_folder_is_reported_once_and_left_alone(setup: tuple[Intake, Store, FakeClock]) -> None:
    intake, _, clock = setup
    _write(intake, "Azure/x.jsonl")
    _write(intake, "other/y.jsonl")
    with capture_logs() as captured:
        for _ in range(3):
            assert _ready(intake, clock) == []
    warned = sorted(e["folder"] for e in captured if e["event"] == "unknown_profile_folder")
    assert warned == ["Azure", "other"]  # one warning per name, not one per scan
    assert all("[providers." in e["hint"] for e in captured if e["event"] == "unknown_profile_folder")
    assert (intake.pending / "Azure" / "x.jsonl").exists() and (intake.pending / "other" / "y.jsonl").exists()


def test_a_hint_names_the_file_by_its_folder(setup: tuple[Intake, Store, FakeClock]) -> None:
    intake, _, _ = setup
    path = _write(intake, "azure/now.jsonl")
    assert intake.note(path, complete=True) == "azure/now.jsonl"
    assert [str(p.relative_to(intake.pending)) for p in intake.ready_files(["azure/now.jsonl"])] == ["azure/now.jsonl"]
    assert intake.note(intake.pending / "nope" / "x.jsonl", complete=True) is None
    assert intake.note(intake.pending / "azure" / "deep" / "x.jsonl", complete=True) is None


def test_account_holds_are_per_profile(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    clock = FakeClock()
    try:
        held = Holds(store, clock)
        held.block_account("HTTP 401", "azure")
        assert held.account_wait(clock.now(), "azure") > 0
        assert held.account_wait(clock.now(), "default") == 0
        assert held.account_reason == "azure: HTTP 401"
        held.clear_account("default")
        assert held.account_reasons() == {"azure": "HTTP 401"}
        held.clear_account("azure")
        assert held.account_reason == ""
    finally:
        store.close()


V6_COLUMN = ",\n    profile TEXT NOT NULL DEFAULT 'default'"


def test_a_version_5_database_gets_the_default_profile_for_every_job(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    assert V6_COLUMN in schema._SCHEMA
    conn = sqlite3.connect(db)
    conn.executescript(schema._SCHEMA.replace(V6_COLUMN, "") + "PRAGMA user_version = 5;")
    conn.execute(
        "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, created_at, updated_at)"
        " VALUES ('old', 'old.jsonl', '', '', 'active', 0, 0)"
    )
    conn.commit()
    conn.close()
    before = Store(db, readonly=True)  # `batchd status` before the daemon migrated it
    try:
        assert before.job("old").profile == "default"
    finally:
        before.close()
    store = Store(db)
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION >= 6
        assert store.job("old").profile == "default"
        assert store.routed_jobs() == {}
    finally:
        store.close()
    assert os.path.exists(db)


def test_small_inputs_are_packed_only_with_inputs_of_their_profile(setup: tuple[Intake, Store, FakeClock]) -> None:
    intake, store, clock = setup
    settings = Settings(root=intake.pending.parent)
    for relative in ("a.jsonl", "b.jsonl", "azure/c.jsonl", "azure/d.jsonl"):
        (intake.pending / relative).parent.mkdir(exist_ok=True)
        (intake.pending / relative).write_text(request_file(2))
    jobs = intake.claim_all([intake.pending / r for r in _ready(intake, clock)])
    prepare_jobs(settings, store, [store.job(j.id) for j in jobs])
    Packer(settings, store, batch_limits(settings), lambda: None).run()
    packs = [j for j in store.jobs() if j.kind == PACK_KIND]
    members = {p.id: {store.job(q.job_id).profile for q in store.pack_members(p.id)} for p in packs}
    assert sorted((p.profile, sorted(members[p.id])) for p in packs) == [("azure", ["azure"]), ("default", ["default"])]
    rows = job_rows(store)
    assert {row["file"]: row["profile"] for row in rows if row["file"].endswith(".jsonl")} == {
        "a.jsonl": "default", "b.jsonl": "default", "c.jsonl": "azure", "d.jsonl": "azure",
    }  # fmt: skip
    header, *lines = render_table(rows).splitlines()
    assert header.split()[:2] == ["FILE", "PROFILE"]
    shown = {line.split()[0]: line.split()[1] for line in lines if not line.startswith("pack of")}
    assert shown == {"a.jsonl": "default", "b.jsonl": "default", "c.jsonl": "azure", "d.jsonl": "azure"}
    assert sorted(row["profile"] for row in rows if row["file"].startswith("pack of")) == ["azure", "default"]


def test_status_has_no_profile_column_while_everything_runs_on_the_default(
    setup: tuple[Intake, Store, FakeClock],
) -> None:
    intake, store, clock = setup
    _write(intake, "only.jsonl")
    intake.claim_all([intake.pending / r for r in _ready(intake, clock)])
    assert "PROFILE" not in render_table(job_rows(store))


def test_every_configured_profile_needs_its_key_at_start() -> None:
    profiles = {
        "groq": parse_profile(
            "groq",
            {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "key_env": "BATCHD_TEST_UNSET_KEY"},
        )
    }
    with pytest.raises(CredentialError, match="provider profile groq"):
        connect_profiles(profiles, 5.0)


def test_status_shows_an_account_hold_only_on_the_jobs_of_the_held_profile(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    now = time.time()
    try:
        for job_id, profile in (("on-openai", "default"), ("on-azure", "azure")):
            store.add_job(Job(job_id, f"{job_id}.jsonl", "", "", JobState.ACTIVE, now, now, profile=profile))
            store.add_part(Part(job_id, 0, 0, "p", 1, 1, 1, 1, PartState.READY, now, now))
        beat = {"at": now, "pid": 1, "account_blocked": "azure: HTTP 401", "account_holds": {"azure": "HTTP 401"}}
        store.set_fact("heartbeat", json.dumps(beat))
        rows = {row["job_id"]: row for row in job_rows(store, now)}
    finally:
        store.close()
    assert rows["on-azure"]["hold"] == {"kind": "account", "reason": "HTTP 401"}
    assert rows["on-azure"]["why"] == "account hold: HTTP 401"
    assert rows["on-openai"]["hold"] is None


def test_open_jobs_of_a_profile_no_longer_configured_are_reported_at_start(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    now = time.time()
    try:
        store.add_job(Job("gone", "a.jsonl", "", "", JobState.ACTIVE, now, now, profile="groq"))
        store.add_job(Job("ended", "b.jsonl", "", "", JobState.DONE, now, now, profile="mistral"))
        services = ProfileServices({})
        with capture_logs() as captured:
            assert report_unconfigured(store, services) == ["groq"]
        assert [(e["event"], e["profile"], e["open_jobs"]) for e in captured] == [("profile_not_configured", "groq", 1)]
        with pytest.raises(AccountError, match=r"\[providers.groq\]"):
            services.of("groq")  # a step of such a job is held (an account hold), never failed
    finally:
        store.close()
