"""`batchd recover` of an input split by model (split_by_model): its parts get their models back,
no part is submitted twice, and the results come back in input order while the routes file is
kept (with the part files), model by model (and said so) when it is gone."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state import folders
from daemon.state.store import Store
from tests.support import FAST, lose_state, request_line
from tests.system.test_recovery import Root

ORDER = ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o-mini"]


@pytest.fixture(name="slow_emulator")
def slow_emulator_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    timings = {**FAST, "in_progress_seconds": 1.5}  # the state is lost while the batches run
    with EmulatorServer(EmulatorSettings(**timings, data_dir=tmp_path / "emulator-data")) as server:  # type: ignore[arg-type]
        yield server


@pytest.mark.parametrize("loss", ["deleted", "deleted with the part files"])
def test_a_lost_mixed_job_is_recovered_with_its_models_and_its_order(
    loss: str, tmp_path: Path, slow_emulator: EmulatorServer
) -> None:
    run = Root(tmp_path, slow_emulator, BATCHD_MAX_REQUESTS_PER_BATCH="3", BATCHD_SPLIT_BY_MODEL="true")
    ids = [f"q{n}" for n in range(len(ORDER))]
    data = "".join(request_line(cid, model=model) + "\n" for cid, model in zip(ids, ORDER, strict=True)).encode()
    staged = run.root / ".mixed.jsonl"
    staged.write_bytes(data)
    staged.rename(run.root / "pending_upload" / "mixed.jsonl")
    run.inputs["mixed.jsonl"] = data
    run.kill_once(batches=3)  # gpt-4o-mini: 4 requests in 2 parts, gpt-4o: 3 in 1
    lose_state(run.root)
    if loss == "deleted with the part files":  # each part comes back from its batch's input file
        shutil.rmtree(run.root / "state" / folders.PARTS)
    said = run.recover()
    assert "adopted 3 batch(es) into 1 job(s)" in said, said
    store = Store(run.root / "state" / folders.DB_NAME, readonly=True)
    try:
        (job,) = store.jobs()
        assert job.model is None
        assert sorted((p.model, p.request_count) for p in store.parts(job.id)) == [
            ("gpt-4o", 3),
            ("gpt-4o-mini", 1),
            ("gpt-4o-mini", 3),
        ]
    finally:
        store.close()
    run.finish()
    assert len(slow_emulator.batches()) == 3, "no part was submitted twice"
    folder = run.root / "batch_results" / "mixed"
    results = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    got = [(r["custom_id"], r["response"]["body"]["model"]) for r in results]
    if loss == "deleted":
        assert got == list(zip(ids, ORDER, strict=True)), "input order, by the routes file kept with the parts"
        assert "results_order" not in summary
    else:
        assert sorted(got) == sorted(zip(ids, ORDER, strict=True))
        assert "routes file" in summary["results_order"] and "gone" in summary["results_order"]
    assert {m: e["requests"] for m, e in summary["models"].items()} == {"gpt-4o-mini": 4, "gpt-4o": 3}
