"""Lost state: a missing, emptied or swapped database is noticed, and `batchd recover` rebuilds the jobs.

Each case runs the real daemon and the real `batchd recover` against the emulator, and counts the
batches the emulator created: exactly one per input (or per pack), however the state was lost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.recover import open_store
from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import StateLostError
from daemon.ops.lost_state_guard import refuse_lost_state
from daemon.state import folders
from daemon.state.store import Store
from tests.support import FAST, daemon_env, job_states, lose_state, request_file, run_recover, spawn_daemon, wait_until

LOST_STATE_EXIT = 2


@pytest.fixture(name="slow_emulator")
def slow_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    # Batches stay in_progress long enough for the state to be lost while they run.
    timings = {**FAST, "in_progress_seconds": 1.5}
    with EmulatorServer(EmulatorSettings(**timings, data_dir=tmp_path / "emulator-data")) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(name="running_emulator")
def running_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    # Batches still in_progress when `batchd recover` lists them, however long its start takes on a busy
    # machine (with slow_emulator's 1.5 s a recover started late found the batch ended and left it unreported).
    timings = {**FAST, "in_progress_seconds": 60.0}
    with EmulatorServer(EmulatorSettings(**timings, data_dir=tmp_path / "emulator-data")) as server:  # type: ignore[arg-type]
        yield server


class Root:
    """A root folder, the daemon started and stopped on it, and `batchd recover`."""

    def __init__(self, tmp_path: Path, server: EmulatorServer, **env: str) -> None:
        self.root = tmp_path / "root"
        self.server = server
        # The tests read the service's files after a job ends: keep them (cleanup has its own tests).
        self.env = daemon_env(server.base_url, BATCHD_DELETE_REMOTE_FILES="false", **env)
        self.log = tmp_path / "daemon.log"
        self.inputs: dict[str, bytes] = {}
        (self.root / "pending_upload").mkdir(parents=True)

    def drop(self, name: str, requests: int, prefix: str = "r") -> None:
        data = request_file(requests, prefix=prefix).encode()
        staged = self.root / f".{name}"
        staged.write_bytes(data)
        staged.rename(self.root / "pending_upload" / name)
        self.inputs[name] = data

    def start(self) -> subprocess.Popen[bytes]:
        return spawn_daemon(self.root, self.env, self.log)

    def kill_once(self, batches: int) -> None:
        """Run until the service holds ``batches`` batches, then SIGKILL the daemon."""
        proc = self.start()
        try:
            wait_until(lambda: len(self.server.batches()) >= batches or proc.poll() is not None, 30, "a batch")
            assert proc.poll() is None, self.log.read_text()
        finally:
            proc.kill()
            proc.wait(timeout=10)

    def assert_refused(self) -> None:
        proc = self.start()
        try:
            assert proc.wait(timeout=30) == LOST_STATE_EXIT, self.log.read_text()
        finally:
            _end(proc)
        assert "batchd recover" in self.log.read_text()

    def recover(self) -> str:
        done = run_recover(self.root, self.env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def finish(self) -> None:
        proc = self.start()
        try:
            done = lambda: sum(s == "done" for _, s in job_states(self.root)) == len(self.inputs)  # noqa: E731
            try:
                wait_until(done, 40, "every input to be done")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; log:\n{self.log.read_text()[-6000:]}") from None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            _end(proc)

    def assert_every_result_once(self) -> None:
        assert list((self.root / "state" / "inflight").iterdir()) == []
        assert list((self.root / "pending_upload").iterdir()) == []
        for name, data in self.inputs.items():
            assert (self.root / "uploaded_files" / name).read_bytes() == data, "archived under its own name"
            wanted = [json.loads(line)["custom_id"] for line in data.decode().splitlines()]
            text = (self.root / "batch_results" / name.removesuffix(".jsonl") / "results.jsonl").read_text()
            results = [json.loads(line) for line in text.splitlines()]
            assert [r["custom_id"] for r in results] == wanted
            assert all(r["response"]["status_code"] == 200 for r in results)


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _empty_database(root: Path) -> None:
    (root / "state" / "batchd.sqlite3").write_bytes(b"")


@pytest.mark.parametrize("loss", ["deleted", "emptied", "deleted with the part files"])
def test_lost_database_with_a_batch_running_is_refused_then_recovered_without_a_second_batch(
    loss: str, tmp_path: Path, slow_emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, slow_emulator, BATCHD_MAX_REQUESTS_PER_BATCH="3")
    run.drop("a.jsonl", 7)  # three parts, three batches
    run.kill_once(batches=3)
    lose_state(run.root) if loss.startswith("deleted") else _empty_database(run.root)
    if loss == "deleted with the part files":  # recover fetches each part from its batch's input file
        shutil.rmtree(run.root / "state" / "parts")
    run.assert_refused()
    said = run.recover()
    assert "adopted 3 batch(es) into 1 job(s)" in said, said
    again = run.recover()
    assert "adopted 0 batch(es) into 0 job(s)" in again and "returned 0 input(s)" in again, again
    run.finish()
    assert len(slow_emulator.batches()) == 3, "no part was submitted twice"
    run.assert_every_result_once()
    for batch in slow_emulator.batches():  # what recover checks a part file against
        uploaded = slow_emulator.file_bytes(batch["input_file_id"])
        assert batch["metadata"]["batchd_part_sha256"] == hashlib.sha256(uploaded).hexdigest()


def test_an_input_never_submitted_goes_back_to_pending_upload_and_completes(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator)
    # Its upload reaches the service (the reply is lost), then no batch can be created.
    emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", after_processing=True)
    emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/batches", count=1000)
    run.drop("a.jsonl", 4)
    proc = run.start()
    try:
        wait_until(lambda: emulator.faults.fired >= 2, 30, "an upload and a refused create")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    emulator.faults.clear()
    lose_state(run.root)
    run.assert_refused()
    said = run.recover()
    assert "returned 1 input(s) to pending_upload/" in said and "deleted 1 stray upload(s)" in said, said
    assert (run.root / "pending_upload" / "a.jsonl").read_bytes() == run.inputs["a.jsonl"]
    assert [f for f in emulator.files() if f["filename"].startswith("batchd-")] == [], "the stray upload is gone"
    run.finish()
    assert len(emulator.batches()) == 1
    run.assert_every_result_once()


def test_a_shared_batch_is_adopted_and_each_member_gets_its_results(
    tmp_path: Path, slow_emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, slow_emulator, BATCHD_PACK_WAIT="30")
    for name in "abc":
        run.drop(f"{name}.jsonl", 2)  # the same custom_ids in every input
    run.kill_once(batches=1)
    lose_state(run.root)
    run.assert_refused()
    said = run.recover()
    assert "adopted 1 batch(es) into 4 job(s)" in said, said  # the pack and its three inputs
    store = Store(run.root / "state" / folders.DB_NAME, readonly=True)
    try:
        origins = sorted(str(p.origin) for parts in store.parts_by_job().values() for p in parts)
    finally:
        store.close()
    assert origins == ["held_input"] * 3 + ["pack"], "rebuilt with the origin their files show"
    run.finish()
    assert len(slow_emulator.batches()) == 1
    run.assert_every_result_once()


@pytest.mark.parametrize("change", ["removed", "replaced", "emptied"])
def test_a_daemon_whose_database_is_removed_or_replaced_stops_with_exit_2(
    change: str, tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator)
    db = run.root / "state" / "batchd.sqlite3"
    proc = run.start()
    try:
        wait_until(lambda: "daemon_started" in run.log.read_text() or proc.poll() is not None, 30, "the start")
        refused = run_recover(run.root, run.env)
        assert refused.returncode == 1 and "already running" in refused.stderr, refused.stderr
        if change == "removed":
            db.unlink()
        elif change == "emptied":
            db.write_bytes(b"")
        else:
            (run.root / "other.sqlite3").write_bytes(db.read_bytes())
            (run.root / "other.sqlite3").replace(db)
        assert proc.wait(timeout=15) == LOST_STATE_EXIT, run.log.read_text()
    finally:
        _end(proc)
    events = [json.loads(line) for line in run.log.read_text().splitlines() if line.startswith("{")]
    lost = [e for e in events if e.get("event") == "state_database_lost"]
    assert lost and lost[0]["level"] == "error" and change in lost[0]["problem"], events[-5:]
    assert "batchd recover" in lost[0]["hint"]


def test_a_start_is_refused_only_when_state_holds_work_the_database_does_not_know(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    refuse_lost_state(settings)  # a fresh root starts as usual
    (settings.state / folders.INFLIGHT / "20261121T141500Z-1a2b3c4d5e6f_a.jsonl").write_text("{}\n")
    with pytest.raises(StateLostError, match=r"is missing.*batchd recover"):
        refuse_lost_state(settings)
    (settings.state / folders.DB_NAME).write_bytes(b"")
    with pytest.raises(StateLostError, match="is empty"):
        refuse_lost_state(settings)


def test_recover_keeps_a_damaged_database_beside_and_starts_a_new_one(tmp_path: Path) -> None:
    db = tmp_path / folders.DB_NAME
    db.write_bytes(b"not a database at all, " * 100)
    store = open_store(db)
    try:
        assert store.jobs() == []
    finally:
        store.close()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(f"{folders.DB_NAME}.damaged-")]
    assert [p.read_bytes() for p in kept] == [b"not a database at all, " * 100]


def test_an_expired_batch_already_resubmitted_keeps_what_ran_and_sends_nothing_again(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator)
    run.drop("exp.jsonl", 8)
    run.inputs["exp.jsonl"] = request_file(8, model="gpt-expire").encode()  # every batch expires half done
    (run.root / "pending_upload" / "exp.jsonl").write_bytes(run.inputs["exp.jsonl"])
    run.kill_once(batches=2)  # the first batch expired and its unfinished requests went again
    lose_state(run.root)
    shutil.rmtree(run.root / "batch_results")  # its downloads too: recover fetches the first batch's again
    said = run.recover()
    assert "adopted 2 batch(es) into 1 job(s)" in said, said
    proc = run.start()
    try:
        wait_until(lambda: [s for _, s in job_states(run.root)] == ["done"], 40, "the job to end")
    finally:
        proc.send_signal(signal.SIGTERM)
        _end(proc)
    batches = sorted(emulator.batches(), key=lambda b: int(b["metadata"]["batchd_part"].split(".")[1]))  # by attempt
    labels = [b["metadata"]["batchd_part"] for b in batches]
    assert len(labels) == len(set(labels)), f"a part was submitted twice: {labels}"
    ran: set[str] = set()
    for batch in batches:
        sent = {json.loads(x)["custom_id"] for x in emulator.file_bytes(batch["input_file_id"]).splitlines()}
        assert not sent & ran, "a request that ran was sent again"
        output = emulator.file_bytes(batch["output_file_id"]).splitlines() if batch["output_file_id"] else []
        ran |= {json.loads(x)["custom_id"] for x in output}
    results = [json.loads(x) for x in (run.root / "batch_results" / "exp" / "results.jsonl").read_text().splitlines()]
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(8)]
    succeeded = {r["custom_id"] for r in results if r["error"] is None}
    assert succeeded == ran, "every result the service returned is kept, also the first batch's"


def test_an_input_claimed_before_the_horizon_is_left_in_place_not_sent_again(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator)
    inflight = run.root / "state" / "inflight"
    inflight.mkdir(parents=True)
    old = inflight / "20200101T000000Z-0123456789ab_old.jsonl"  # its batch, if any, is too old to be listed
    old.write_text(request_file(2))
    done = run_recover(run.root, run.env, "--since-days", "30")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "left 1 thing(s)" in done.stdout and "--since-days" in done.stdout, done.stdout
    assert old.exists() and list((run.root / "pending_upload").iterdir()) == []


def test_inputs_in_a_pack_that_cannot_be_read_are_left_never_sent_again(
    tmp_path: Path, running_emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, running_emulator, BATCHD_PACK_WAIT="30")
    for name in "abc":
        run.drop(f"{name}.jsonl", 2)
    run.kill_once(batches=1)
    lose_state(run.root)
    for manifest in (run.root / "state" / "packs").glob("*/members.json"):
        manifest.unlink()  # as a pack made by a batchd before members.json existed
    done = run_recover(run.root, run.env)
    assert done.returncode == 1, done.stdout + done.stderr
    # The pack's folder, its three inputs, and its batch still running: all reported, none sent again.
    assert "returned 0 input(s)" in done.stdout and "left 5 thing(s)" in done.stdout, done.stdout
    assert len(list((run.root / "state" / "inflight").iterdir())) == 3
    assert list((run.root / "pending_upload").iterdir()) == []


def test_results_of_an_earlier_input_of_the_same_name_do_not_hold_a_new_one_back(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator)
    run.drop("a.jsonl", 2)
    proc = run.start()
    try:
        wait_until(lambda: [s for _, s in job_states(run.root)] == ["done"], 30, "the first a.jsonl to be done")
        emulator.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", count=1000)
        run.drop("a.jsonl", 3, prefix="second-")  # the same name again; its upload is refused
        wait_until(lambda: emulator.faults.fired >= 1, 30, "the second upload to be refused")
    finally:
        _end(proc)
    lose_state(run.root)
    said = run.recover()
    assert "returned 1 input(s)" in said and "left 0 thing(s)" in said, said
    assert (run.root / "pending_upload" / "a.jsonl").read_bytes() == run.inputs["a.jsonl"]


def test_inputs_handed_their_share_of_a_pack_whose_folder_is_gone_get_their_jobs_back(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, emulator, BATCHD_PACK_WAIT="30", BATCHD_CRASH_AT="handed_over")
    for name in "abc":
        run.drop(f"{name}.jsonl", 2)
    proc = run.start()
    try:
        assert proc.wait(timeout=30) == -signal.SIGKILL, run.log.read_text()
    finally:
        _end(proc)
    del run.env["BATCHD_CRASH_AT"]
    for folder in (run.root / "state" / "packs").iterdir():
        shutil.rmtree(folder)  # as the unpacker does right after the hand-over
    lose_state(run.root)
    said = run.recover()
    assert "adopted 1 batch(es) into 3 job(s)" in said and "returned 0 input(s)" in said, said
    run.finish()
    assert len(emulator.batches()) == 1
    run.assert_every_result_once()
