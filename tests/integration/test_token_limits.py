"""A model's enqueued-token limit: an input too big for it is split to fit, a request that alone is
over it fails with a report, and `batchd status` says why a job waits."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.cli.status import job_rows, render_table, status_text
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.intake.reports import report_path
from daemon.service import holds
from daemon.service.remote_cleanup import remote_files_of
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import FAST, Harness, fast_settings, request_line, wait_until

LIMIT = 200  # the emulator's enqueued-token limit; a request line is about 20 of its tokens
OLD = 60.0  # seconds: dropped files look long finished, so one scan claims them all together


@pytest.fixture(autouse=True)
def _quick_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A part waiting for room in the queue is looked at again after a quarter of this.
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", 0.4)


def limited_server(tmp_path: Path, token_weight: float = 1.0, **timing: float) -> EmulatorServer:
    settings = EmulatorSettings(
        **{**FAST, **timing},  # type: ignore[arg-type]
        token_limit=LIMIT,
        token_weight=token_weight,
        data_dir=tmp_path / "emulator",
    )
    return EmulatorServer(settings)


@pytest.fixture(name="server")
def server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    with limited_server(tmp_path) as server:
        yield server


@pytest.fixture(name="daemon")
def daemon_fixture(tmp_path: Path, server: EmulatorServer) -> Iterator[Harness]:
    root = tmp_path / "root"
    root.mkdir()
    harness = Harness(fast_settings(root, server.base_url), server)
    yield harness
    harness.stop()


def big_line(cid: str) -> str:
    """A request about 300 emulator tokens long: over LIMIT by itself."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "word " * 240}]}
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})


def sent_ok(server: EmulatorServer) -> Counter[str]:
    """How often each custom_id came back in a completed batch's output, over every batch."""
    seen: Counter[str] = Counter()
    for batch in server.batches():
        if batch["status"] == "completed" and batch["output_file_id"]:
            for raw in server.file_bytes(batch["output_file_id"]).splitlines():
                seen[json.loads(raw)["custom_id"]] += 1
    return seen


def refused(server: EmulatorServer) -> list[dict[str, Any]]:
    return [
        b
        for b in server.batches()
        if b["status"] == "failed" and b["errors"]["data"][0]["code"] == "token_limit_exceeded"
    ]


def test_an_input_over_the_limit_is_split_to_fit_and_completes_in_order(
    daemon: Harness, server: EmulatorServer
) -> None:
    ids = [f"r{i}" for i in range(12)]
    daemon.start().drop("big.jsonl", "".join(request_line(i) + "\n" for i in ids))
    daemon.wait_job("big.jsonl", timeout=30)

    assert len(refused(server)) == 1, "only the first batch, the whole input, was refused"
    assert sent_ok(server) == Counter(ids), "each request ran exactly once"
    results = daemon.results("big.jsonl")
    assert [r["custom_id"] for r in results] == ids, "results in input order"
    assert all(r["response"]["status_code"] == 200 for r in results)
    assert daemon.store is not None
    parts = daemon.store.parts(daemon.job("big.jsonl").id)  # type: ignore[union-attr]
    assert [p.state for p in parts].count(PartState.SUPERSEDED) == 1
    fitted = [p for p in parts if p.state == PartState.DOWNLOADED]
    assert len(fitted) > 1 and all(p.est_tokens <= LIMIT * 0.9 for p in fitted)
    assert sum(p.request_count for p in fitted) == 12
    assert daemon.store.fact("token_limit:gpt-4o-mini") == str(LIMIT)
    (old,) = [p for p in parts if p.state == PartState.SUPERSEDED]
    assert old.file_id in dict(remote_files_of(parts)), "its uploaded file is deleted with the others"

    # The limit is known now: the next big input is split before it is sent, and nothing is refused.
    again = [f"q{i}" for i in range(12)]
    daemon.drop("again.jsonl", "".join(request_line(i) + "\n" for i in again))
    daemon.wait_job("again.jsonl", timeout=30)
    assert len(refused(server)) == 1
    assert [r["custom_id"] for r in daemon.results("again.jsonl")] == again
    assert sent_ok(server) == Counter(ids + again)


def test_a_part_refused_alone_though_its_estimate_fits_is_halved(tmp_path: Path) -> None:
    # The service counts three times the estimate (dense text): 4 requests are estimated within the
    # limit but refused with nothing else queued; refused so a second time, they go again in halves.
    ids = [f"d{i}" for i in range(4)]
    with limited_server(tmp_path, token_weight=3.0) as server:
        root = tmp_path / "root"
        root.mkdir()
        daemon = Harness(fast_settings(root, server.base_url), server).start()
        try:
            daemon.drop("dense.jsonl", "".join(request_line(i) + "\n" for i in ids))
            daemon.wait_job("dense.jsonl", timeout=30)
            assert [r["custom_id"] for r in daemon.results("dense.jsonl")] == ids
            assert sent_ok(server) == Counter(ids)
            assert [server.file_bytes(b["input_file_id"]).count(b"\n") for b in refused(server)][:2] == [4, 4]
        finally:
            daemon.stop()


def test_split_parts_that_expire_resend_only_their_unfinished_requests(daemon: Harness, server: EmulatorServer) -> None:
    # Every batch of this model expires half done: the split parts of one segment are resubmitted
    # side by side, each under an attempt number of its own, and nothing that ran goes again.
    ids = [f"e{i}" for i in range(20)]
    daemon.start().drop("exp.jsonl", "".join(request_line(i, model="gpt-expire") + "\n" for i in ids))
    daemon.wait_job("exp.jsonl", timeout=30)

    ran: Counter[str] = Counter()  # answered in any batch; the error files hold only batch_expired lines here
    for batch in server.batches():
        if batch["output_file_id"]:
            ran.update(json.loads(raw)["custom_id"] for raw in server.file_bytes(batch["output_file_id"]).splitlines())
    results = daemon.results("exp.jsonl")
    assert [r["custom_id"] for r in results] == ids, "results in input order"
    succeeded = [r["custom_id"] for r in results if r["response"] and r["response"]["status_code"] == 200]
    assert len(refused(server)) == 1 and len(succeeded) > 10
    assert ran == Counter(succeeded), "no request that ran was sent again"
    assert daemon.store is not None
    parts = daemon.store.parts(daemon.job("exp.jsonl").id)  # type: ignore[union-attr]
    assert len({p.attempt for p in parts}) == len(parts) > 6


def test_a_request_alone_over_the_limit_fails_the_input_with_a_report(daemon: Harness, server: EmulatorServer) -> None:
    # A blank line before the big request: the report names its line in the input, line 4.
    text = request_line("a") + "\n" + request_line("b") + "\n\n" + big_line("big") + "\n" + request_line("c") + "\n"
    daemon.start().drop("huge.jsonl", text)
    job = daemon.wait_job("huge.jsonl", JobState.FAILED, JobState.DONE, timeout=30)

    assert job.state == JobState.FAILED
    assert job.final_path is not None
    report = report_path(Path(job.final_path)).read_text()
    assert "line 4 (custom_id 'big')" in report
    assert f"{LIMIT:,} enqueued-token limit" in report and "gpt-4o-mini" in report
    assert "max_tokens_per_batch" in report and "raise the account's enqueued-token limit" in report
    assert sent_ok(server) == Counter(["a", "b", "c"]), "the others ran once; the big one was not sent again"
    assert len(refused(server)) == 1
    results = {r["custom_id"]: r for r in daemon.results("huge.jsonl")}
    assert list(results) == ["a", "b", "big", "c"], "the others' results are kept, in input order"
    assert results["big"]["error"]["code"] == "batch_rejected"


def test_small_inputs_packed_over_the_limit_go_alone_and_complete(tmp_path: Path, server: EmulatorServer) -> None:
    root = tmp_path / "packs"
    root.mkdir()
    daemon = Harness(fast_settings(root, server.base_url, pack_wait=10.0), server)
    daemon.settings.pending.mkdir(parents=True)
    names = [f"{n}.jsonl" for n in "abc"]
    for name in names:  # each fits; the three together, one pack, do not
        path = daemon.settings.pending / name
        path.write_text("".join(request_line(f"{name[0]}{i}") + "\n" for i in range(4)))
        os.utime(path, (time.time() - OLD, time.time() - OLD))
    try:
        daemon.start()
        for name in names:
            daemon.wait_job(name, timeout=30)
            assert [r["custom_id"] for r in daemon.results(name)] == [f"{name[0]}{i}" for i in range(4)]
    finally:
        daemon.stop()
    refused_inputs = [server.file_bytes(b["input_file_id"]).count(b"\n") for b in refused(server)]
    assert refused_inputs == [12], "the pack was refused, once"
    assert sent_ok(server) == Counter(f"{n}{i}" for n in "abc" for i in range(4)), "then each input ran alone, once"


def test_status_says_why_a_job_waits_on_the_token_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", 300.0)  # held for the whole test
    with limited_server(tmp_path, in_progress_seconds=60.0) as server:
        root = tmp_path / "root"
        root.mkdir()
        daemon = Harness(fast_settings(root, server.base_url), server).start()
        try:
            # first fills most of the queue (160 of 200 tokens) and stays in progress; second then overflows it.
            daemon.drop("first.jsonl", "".join(request_line(f"f{i}") + "\n" for i in range(8)))
            wait_until(lambda: [b for b in server.batches() if b["status"] == "in_progress"], what="first running")
            daemon.drop("second.jsonl", "".join(request_line(f"s{i}") + "\n" for i in range(4)))

            def held() -> dict[str, Any] | None:
                rows = json.loads(status_text(daemon.settings, as_json=True))["jobs"]
                row = next((r for r in rows if r["file"] == "second.jsonl"), None)
                return row if row is not None and row.get("hold") else None

            row = wait_until(held, 20, "second.jsonl held")
            table = status_text(daemon.settings, as_json=False)
        finally:
            daemon.stop()
    assert row["state"] == "active"
    assert row["hold"]["kind"] == "token_limit"
    assert row["hold"]["limit"] == LIMIT and row["hold"]["model"] == "gpt-4o-mini"
    assert row["last_error"].startswith("token_limit_exceeded")
    assert row["next_retry_at"] > time.time() + 60
    assert "token limit" in row["why"]
    assert "WHY" in table.splitlines()[0] and "token limit of gpt-4o-mini full" in table


def test_status_names_an_account_hold_a_full_queue_and_a_retry(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    now = time.time()

    def add(name: str, state: PartState, est: int, **fields: Any) -> None:
        job = Job(name, f"{name}.jsonl", "", "", JobState.ACTIVE, now, now, model="gpt-4o-mini", request_count=1)
        store.add_job(job)
        part = Part(name, 0, 0, f"{name}.part", 1, 1, 4 * est, est, state, now, now)
        store.update_part(store.add_part(part).id, **fields)

    add("running", PartState.SUBMITTED, 150, next_action_at=now + 1)
    add("queued", PartState.UPLOADED, 100, next_action_at=now + 30)
    add("erred", PartState.FINISHED, 10, last_error="Connection refused", next_action_at=now + 90)
    rows = {r["job_id"]: r for r in job_rows(store, now)}
    assert rows["running"]["why"] is None and rows["running"]["hold"] is None
    assert rows["queued"]["hold"] is None, "no limit learned yet: nothing to hold on"
    assert rows["erred"]["last_error"] == "Connection refused" and rows["erred"]["next_retry_at"] == now + 90
    assert rows["erred"]["why"] == "retry in 90s after: Connection refused"

    store.set_fact("token_limit:gpt-4o-mini", "200")  # 150 queued + 100 more would overflow it
    rows = {r["job_id"]: r for r in job_rows(store, now)}
    assert rows["queued"]["hold"] == {"kind": "token_limit", "model": "gpt-4o-mini", "limit": 200, "until": None}
    assert rows["queued"]["why"] == "token limit of gpt-4o-mini full (limit 200 tokens); next try in 30s"

    store.set_fact("heartbeat", json.dumps({"at": now, "account_blocked": "401 invalid key\x1b[31m"}))
    rows = {r["job_id"]: r for r in job_rows(store, now)}
    assert rows["queued"]["hold"] == {"kind": "account", "reason": "401 invalid key\x1b[31m"}
    assert rows["running"]["hold"] is None, "a batch already sent waits on nothing"
    table = render_table(list(rows.values()))
    assert "account hold: 401 invalid key?[31m" in table and "\x1b" not in table
    assert max(len(line) for line in table.splitlines()) < 160
    store.close()
