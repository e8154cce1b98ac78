"""End to end: files dropped into the real engine come back as ordered results, via the emulator."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import Harness, request_file, wait_until


@pytest.mark.parametrize("url", ["/v1/chat/completions", "/v1/embeddings", "/v1/responses"])
def test_file_in_results_out_in_input_order(harness: Harness, emulator: EmulatorServer, url: str) -> None:
    harness.drop("work.jsonl", request_file(25, url=url))
    job = harness.wait_job("work.jsonl")
    results = harness.results("work.jsonl")
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(25)]
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results)
    summary = harness.summary("work.jsonl")
    assert summary["outcomes"] == {"succeeded": 25, "failed": 0, "not_run": 0}
    assert summary["endpoint"] == url
    assert summary["usage"]["total_tokens"] > 0
    batch_id = summary["batches"][0]["batch_id"]
    assert (Path(job.result_dir or "") / f"{batch_id}_output.jsonl").exists()
    assert (harness.settings.uploaded / "work.jsonl").exists()
    assert not (harness.settings.pending / "work.jsonl").exists()
    assert len(emulator.batches()) == 1
    assert emulator.batches()[0]["metadata"]["batchd_job"] == job.id


def test_bad_file_is_reported_and_good_file_still_completes(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("bad.jsonl", '{"model": "gpt-4-turbo", "messages": []}\nnot json\n')
    harness.drop("good.jsonl", request_file(3))
    harness.wait_job("good.jsonl")
    harness.wait_job("bad.jsonl", JobState.REJECTED)
    report = (harness.settings.failed / "bad.jsonl.report.txt").read_text()
    assert "line 1: this line is a bare request body" in report
    assert "line 2: not valid JSON" in report
    assert (harness.settings.failed / "bad.jsonl").exists()
    assert len([f for f in emulator.files() if f["purpose"] == "batch"]) == 1  # only the good one went up


def test_same_name_twice_never_overwrites_results(harness: Harness) -> None:
    harness.drop("again.jsonl", request_file(2))
    first = harness.wait_job("again.jsonl")
    harness.drop("again.jsonl", request_file(3))
    second = wait_until(
        lambda: (j := harness.job("again.jsonl")) and j.id != first.id and j.state == JobState.DONE and j
    )
    assert first.result_dir != second.result_dir
    assert len((Path(first.result_dir or "") / "results.jsonl").read_text().splitlines()) == 2
    assert len((Path(second.result_dir or "") / "results.jsonl").read_text().splitlines()) == 3
    assert len(list(harness.settings.uploaded.iterdir())) == 2


@pytest.mark.parametrize("name", ["my file: v2 (ü).jsonl", "-leading-dash.jsonl", "日本語.jsonl"])
def test_odd_names_work(harness: Harness, name: str) -> None:
    harness.drop(name, request_file(2))
    harness.wait_job(name)
    assert (harness.settings.uploaded / name).exists()
    assert len(harness.results(name)) == 2


def test_ignored_names_are_left_alone(harness: Harness) -> None:
    for name in (".hidden.jsonl", "x.jsonl.tmp", "x.jsonl.part", "x.jsonl~", "notes.txt"):
        (harness.settings.pending / name).write_text(request_file(1))
    harness.drop("real.jsonl", request_file(1))
    harness.wait_job("real.jsonl")
    left = sorted(p.name for p in harness.settings.pending.iterdir())
    assert left == [".hidden.jsonl", "notes.txt", "x.jsonl.part", "x.jsonl.tmp", "x.jsonl~"]


def test_split_into_parts_and_merged_in_order(harness_factory, emulator: EmulatorServer) -> None:
    harness = harness_factory(max_requests_per_batch=4).start()
    data = request_file(10).replace("\n", "\r\n").encode()  # CRLF: what is fingerprinted is the file as dropped
    harness.drop("big.jsonl", data)
    job = harness.wait_job("big.jsonl")
    results = harness.results("big.jsonl")
    assert [r["custom_id"] for r in results] == [f"r{i}" for i in range(10)]
    assert len(emulator.batches()) == 3
    summary = harness.summary("big.jsonl")
    assert [b["part"] for b in summary["batches"]] == ["0.0", "1.0", "2.0"]
    assert summary["sha256"] == hashlib.sha256(data).hexdigest() and job.size == len(data)
    assert {b["metadata"]["batchd_sha256"] for b in emulator.batches()} == {summary["sha256"]}


def test_file_over_the_token_budget_becomes_several_batches_in_order(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    content = request_file(10)
    estimates = [len(text) // 4 for text in content.splitlines(keepends=True)]  # the splitter's estimate
    budget = 3 * max(estimates)
    assert sum(estimates) > 3 * budget  # over three budgets' worth: at least four batches
    harness = harness_factory(max_tokens_per_batch=budget).start()
    harness.drop("tokens.jsonl", content)
    harness.wait_job("tokens.jsonl")
    assert [r["custom_id"] for r in harness.results("tokens.jsonl")] == [f"r{i}" for i in range(10)]
    batches = emulator.batches()
    assert len(batches) == 4
    for batch in batches:
        lines = emulator.file_bytes(batch["input_file_id"]).splitlines(keepends=True)
        assert sum(len(line) // 4 for line in lines) <= budget
    assert harness.summary("tokens.jsonl")["outcomes"] == {"succeeded": 10, "failed": 0, "not_run": 0}


def test_file_copied_in_without_rename_is_claimed_once_quiet(harness: Harness) -> None:
    path = harness.settings.pending / "copied.jsonl"
    with open(path, "w") as fh:  # like cp: written in place, closed at the end
        fh.write(request_file(2))
    harness.wait_job("copied.jsonl")
    assert len(harness.results("copied.jsonl")) == 2
