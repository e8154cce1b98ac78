"""Small inputs sharing one batch: fewer batches, and each input still gets exactly its own results."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from daemon.cli.cancel import cancel_one
from daemon.cli.status import job_rows, render_table
from daemon.config import Settings
from daemon.intake.packer import UNMATCHED_NOTE, Packer
from daemon.intake.preparer import batch_limits
from daemon.results.unpacker import unpack
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, JobState, PartOutcome, PartState
from daemon.state.store import Store
from tests.support import Harness

OLD = 60.0  # seconds: dropped files look long finished, so one scan claims them all together


def line(name: str, i: int, model: str = "gpt-4o-mini") -> str:
    """Request r<i> of input ``name``: the same custom_ids in every input, a prompt naming the input."""
    body = {"model": model, "messages": [{"role": "user", "content": f"{name} question {i}"}]}
    return json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"


def drop_before_start(harness: Harness, files: dict[str, str]) -> None:
    """Drop every file before the daemon starts, so one pass claims them all at once."""
    harness.settings.pending.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = harness.settings.pending / name
        path.write_text(text)
        os.utime(path, (time.time() - OLD, time.time() - OLD))


def small_inputs(names: str, requests: int, model: str = "gpt-4o-mini") -> dict[str, str]:
    return {f"{n}.jsonl": "".join(line(n, i, model) for i in range(requests)) for n in names}


def packed_input(store: Store) -> tuple[Job, Job]:
    """A pack carrying one input, as the state holds them while the shared batch runs."""
    now = time.time()
    pack = Job("pack-1", "pack of 2 inputs", "", "", JobState.ACTIVE, now, now, kind=PACK_KIND, request_count=4)
    member = Job("in-1", "a.jsonl", "", "", JobState.ACTIVE, now, now, request_count=2)
    store.add_job(pack)
    store.add_job(member)
    store.add_part(Part(pack.id, 0, 0, "p", 1, 4, 10, 3, PartState.SUBMITTED, now, now, batch_id="batch_x"))
    store.add_part(Part(member.id, 0, 0, "m", 1, 2, 5, 1, PartState.PACKED, now, now, pack_id=pack.id, pack_slot=0))
    return pack, member


def test_a_member_abandoned_while_packed_stays_ended_when_the_pack_is_refused(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        pack, member = packed_input(store)
        (mine,) = store.parts(member.id)
        store.update_part(mine.id, state=PartState.DOWNLOADED, outcome=PartOutcome.ABANDONED)  # as abandonment does
        (shared,) = store.parts(pack.id)
        store.update_part(shared.id, state=PartState.FINISHED, batch_status="failed")
        store.update_part(shared.id, state=PartState.DOWNLOADED)
        store.update_job(pack.id, state=JobState.COLLECTING)
        unpack(settings, store, store.job(pack.id), store.parts(pack.id), [])
        assert (store.part(mine.id).state, store.part(mine.id).outcome) == (PartState.DOWNLOADED, PartOutcome.ABANDONED)
        assert store.job(pack.id).state == JobState.FAILED
    finally:
        store.close()


def test_status_shows_which_pack_carries_an_input(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    try:
        packed_input(store)
        rows = {row["file"]: row for row in job_rows(store)}
    finally:
        store.close()
    assert rows["a.jsonl"]["pack"] == "pack-1"
    assert rows["pack of 2 inputs"]["batches"] == [{"id": "batch_x", "status": None}]
    assert "active (in pack-1)" in render_table(list(rows.values()))


def test_cancelling_one_packed_input_leaves_the_shared_batch_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "state.sqlite3")
    try:
        _, member = packed_input(store)
        cancel_one(store, None, member)  # type: ignore[arg-type] # never reaches the service
        assert not store.job(member.id).cancel_requested and store.job(member.id).note is None
    finally:
        store.close()
    assert "cancel the pack by its id" in capsys.readouterr().out


def test_output_lines_of_no_input_keep_the_pack_folder_with_a_note_and_the_sweep_keeps_it(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        pack, member = packed_input(store)
        folder = settings.state / "packs" / pack.id
        folder.mkdir()
        store.update_job(pack.id, result_dir=str(folder), state=JobState.COLLECTING)  # as the collector does
        store.update_job(member.id, result_dir=str(settings.results / "a"))
        pack = store.job(pack.id)
        store.update_part(store.parts(pack.id)[0].id, state=PartState.DOWNLOADED, batch_status="completed")
        output = folder / "batch_x_output.jsonl"
        output.write_text(json.dumps({"custom_id": "0:r0", "error": None}) + "\n" + '{"custom_id": "mangled"}\n')
        unpack(settings, store, pack, store.parts(pack.id), [output])

        mine = (settings.results / "a" / "batch_x_output.jsonl").read_text().splitlines()
        assert [json.loads(text)["custom_id"] for text in mine] == ["r0"]
        assert store.job(pack.id).state == JobState.DONE
        assert "1 line(s)" in (folder / UNMATCHED_NOTE).read_text()
        packer = Packer(settings, store, batch_limits(settings), lambda: None)
        packer.sweep()
        assert output.exists(), "kept for a person to look at"
        (folder / UNMATCHED_NOTE).unlink()
        packer.sweep()
        assert not folder.exists(), "an ended pack's folder without the note is what a crash left behind"
    finally:
        store.close()
