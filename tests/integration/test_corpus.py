"""The hostile input corpus: every case dropped into one running daemon at once, each outcome exact.

The expectations for the committed files are read from ``tests/integration/corpus/README.md``; the cases that
cannot be committed (a 10 MB line, a directory, a symlink, a pipe, an unreadable file, a file that
vanishes or is still being written, odd names) are made here, at run time, in the same drop zone.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.state.rows import Job
from daemon.state.states import TERMINAL_JOB_STATES, JobState
from tests.support import Harness, request_file, request_line, wait_until

CORPUS = Path(__file__).parent / "corpus"
MAX_REQUESTS = 4  # small, so that over_request_limit.jsonl (10 requests) is split into three batches
MIN_AGE = 1.0  # files without a completion event (the growing one) must stay this quiet to be claimed
_ENTRY = re.compile(
    r"^- `(?P<name>[^`]+)`: (?:rejected (?:at line (?P<line>\d+)|\(whole file\)): (?P<phrase>.+)"
    r"|accepted, (?P<count>\d+) requests?)$"
)
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Case:
    name: str
    line: int | None = None  # the line the report must name; None for a whole-file problem
    phrase: str | None = None  # what the report must say; None when the file is accepted
    count: int = 0  # requests, when accepted


def corpus_cases() -> list[Case]:
    cases = []
    for text in (CORPUS / "README.md").read_text(encoding="utf-8").splitlines():
        if match := _ENTRY.match(text):
            line = match["line"]
            cases.append(Case(match["name"], int(line) if line else None, match["phrase"], int(match["count"] or 0)))
    return cases


def test_readme_lists_every_corpus_file_once() -> None:
    names = [case.name for case in corpus_cases()]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(p.name for p in CORPUS.glob("*.jsonl"))
    assert len(names) >= 20


def _custom_ids(data: bytes) -> list[str]:
    return [json.loads(line)["custom_id"] for line in data.splitlines() if line.strip()]


def _place(folder: Path, name: str | bytes, data: bytes) -> None:
    """Write under a short dot-temp name, then rename into place (the name may be near NAME_MAX)."""
    tmp = folder / f".incoming-{time.monotonic_ns()}.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, os.path.join(os.fsencode(folder), name) if isinstance(name, bytes) else folder / name)


def _report(job: Job) -> list[str]:
    assert job.final_path, f"{job.source_name!r} has no final path"
    return Path(job.final_path + ".report.txt").read_text(encoding="utf-8").splitlines()


def _assert_rejected(harness: Harness, name: str, line: int | None, phrase: str) -> Job:
    job = harness.job(name)
    assert job is not None, f"{name!r} was never claimed"
    assert job.state == JobState.REJECTED, f"{name!r} is {job.state}: {job.note}"
    assert job.final_path and Path(job.final_path).parent == harness.settings.failed
    report = _report(job)
    if line is None:
        assert any(phrase in entry for entry in report), f"{phrase!r} not in the report of {name!r}: {report}"
        assert not [entry for entry in report if entry.startswith("line ")], report
    else:
        wanted = [e for e in report if e.startswith(f"line {line}: ") and phrase in e]
        assert wanted, f"no 'line {line}: ...{phrase}...' in the report of {name!r}: {report}"
    return job


def _assert_accepted(harness: Harness, name: str, ids: list[str]) -> Job:
    job = harness.job(name)
    assert job is not None, f"{name!r} was never claimed"
    assert job.state == JobState.DONE, f"{name!r} is {job.state}: {job.note}"
    results = harness.results(name)
    assert [r["custom_id"] for r in results] == ids
    assert all(r["error"] is None and r["response"]["status_code"] == 200 for r in results)
    assert job.final_path and Path(job.final_path).parent == harness.settings.uploaded
    return job


@pytest.fixture(name="logs")
def logs_fixture() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def _events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in list(logs) if e["event"] == name]


def test_whole_corpus_at_once(
    harness_factory: Callable[..., Harness],
    emulator: EmulatorServer,
    tmp_path: Path,
    logs: list[MutableMapping[str, Any]],
) -> None:
    # Every input in batches of its own, so each input's batch can be found below (test_packer
    # covers small inputs sharing a batch).
    harness = harness_factory(max_requests_per_batch=MAX_REQUESTS, min_file_age=MIN_AGE, pack_inputs_up_to=0).start()
    assert harness.engine is not None
    pending, failed = harness.settings.pending, harness.settings.failed
    cases = corpus_cases()

    # Run-time cases that are not plain files, or too big to commit.
    outside = tmp_path / "outside"
    outside.mkdir()
    link_target = outside / "target.jsonl"
    link_target.write_text(request_file(2, prefix="t"))
    os.symlink(link_target, pending / "link.jsonl")
    (outside / "x.jsonl").mkdir()
    (outside / "x.jsonl" / "inside.jsonl").write_text(request_file(1))
    os.rename(outside / "x.jsonl", pending / "x.jsonl")
    os.mkfifo(pending / "fifo.jsonl")
    locked = outside / "locked.jsonl"
    locked.write_text(request_file(2, prefix="l"))
    locked.chmod(0)
    os.rename(locked, pending / "locked.jsonl")
    big = request_line("big0").replace("question big0", "x" * 10_000_000)
    _place(pending, "big_line.jsonl", (big + "\n").encode())
    newline_name = "new\nline.jsonl"
    _place(pending, newline_name, request_file(2, prefix="n").encode())
    long_name = "日" * 83 + ".jsonl"
    assert len(long_name.encode()) == 255  # NAME_MAX
    _place(pending, long_name, b"not json\n")
    bad_name = b"bad\xff.jsonl"
    _place(pending, bad_name, request_file(1).encode())

    # The committed corpus and two good files, all at once.
    for case in cases:
        harness.drop(case.name, (CORPUS / case.name).read_bytes())
    harness.drop("good-1.jsonl", request_file(3, prefix="a"))
    harness.drop("good-2.jsonl", request_file(6, prefix="b"))

    intake = harness.engine.intake

    def seen_as_is(name: str) -> bool:
        """The daemon has looked at ``name`` in its current state (and left it alone)."""
        cand = intake._candidates.get(name)
        st = os.stat(pending / name)
        return cand is not None and cand.signature == (st.st_ino, st.st_size, st.st_mtime_ns)

    # A file deleted right after the daemon saw it (never closed, so no completion event).
    with open(pending / "vanish.jsonl", "wb") as vanishing:
        vanishing.write(request_file(2, prefix="v").encode())
        vanishing.flush()
        wait_until(lambda: seen_as_is("vanish.jsonl"), 5, "the daemon to see vanish.jsonl")
        os.unlink(pending / "vanish.jsonl")
    # The same race one step later: gone between the readiness check and the claim's rename.
    assert intake.claim_all([pending / "vanish.jsonl"]) == []

    # A file still being written: a partial last line that keeps growing, with a fresh mtime.
    last = request_line("g1")
    cut = last.index('"url"')
    growing = pending / "growing.jsonl"
    started, looks = time.monotonic(), []
    with open(growing, "wb") as writer:
        writer.write((request_line("g0") + "\n" + last[:cut]).encode())
        writer.flush()

        def keep_writing() -> bool:
            assert harness.job("growing.jsonl") is None, "claimed while it was still being written"
            if seen_as_is("growing.jsonl"):
                looks.append(time.monotonic())
                writer.write(b" ")  # whitespace between JSON tokens: the line stays valid once finished
                writer.flush()
            return len(looks) >= 5 and time.monotonic() - started > 2 * MIN_AGE

        wait_until(keep_writing, 15, "the writer to outlast min_file_age")
        assert harness.job("growing.jsonl") is None
        writer.write((last[cut:] + "\n").encode())

    runtime = ["link.jsonl", "x.jsonl", "fifo.jsonl", "locked.jsonl", "big_line.jsonl", newline_name, long_name]
    names = [c.name for c in cases] + ["good-1.jsonl", "good-2.jsonl", "growing.jsonl", *runtime]

    def settled() -> bool:
        return all((j := harness.job(n)) is not None and j.state in TERMINAL_JOB_STATES for n in names)

    try:
        wait_until(settled, 40, "every input to reach a final state")
    except AssertionError:
        states = {n: (j.state, j.note) if (j := harness.job(n)) else None for n in names}
        raise AssertionError(f"not all settled: {states}") from None

    # The committed corpus, exactly as the README says.
    accepted_jobs: dict[str, Job] = {}
    for case in cases:
        original = (CORPUS / case.name).read_bytes()
        if case.phrase is None:
            job = _assert_accepted(harness, case.name, _custom_ids(original))
            assert len(_custom_ids(original)) == case.count
            assert Path(job.final_path or "").read_bytes() == original  # archived as it was dropped
            accepted_jobs[case.name] = job
        else:
            job = _assert_rejected(harness, case.name, case.line, case.phrase)
            assert job.final_path == str(failed / case.name)
            assert (failed / case.name).read_bytes() == original  # never modified

    # Over the request limit: split, one batch per four requests, merged back in order.
    over_id = accepted_jobs["over_request_limit.jsonl"].id
    over = [b for b in emulator.batches() if b["metadata"]["batchd_job"] == over_id]
    assert sorted(b["request_counts"]["total"] for b in over) == [2, 4, 4]
    assert [b["part"] for b in harness.summary("over_request_limit.jsonl")["batches"]] == ["0.0", "1.0", "2.0"]

    for name, ids in [("good-1.jsonl", [f"a{i}" for i in range(3)]), ("good-2.jsonl", [f"b{i}" for i in range(6)])]:
        accepted_jobs[name] = _assert_accepted(harness, name, ids)
    accepted_jobs["big_line.jsonl"] = _assert_accepted(harness, "big_line.jsonl", ["big0"])
    (big_batch,) = [b for b in emulator.batches() if b["metadata"]["batchd_job"] == accepted_jobs["big_line.jsonl"].id]
    assert emulator.file_bytes(big_batch["input_file_id"]) == (big + "\n").encode()  # uploaded whole, as one request
    accepted_jobs["growing.jsonl"] = _assert_accepted(harness, "growing.jsonl", ["g0", "g1"])
    accepted_jobs[newline_name] = _assert_accepted(harness, newline_name, ["n0", "n1"])
    assert Path(accepted_jobs[newline_name].final_path or "").name == "new_line.jsonl"

    # Not regular files: claimed only to be rejected, and moved as they are.
    _assert_rejected(harness, "x.jsonl", None, "it is not a regular file")
    assert (failed / "x.jsonl" / "inside.jsonl").read_text() == request_file(1)
    _assert_rejected(harness, "fifo.jsonl", None, "it is not a regular file")
    assert stat.S_ISFIFO(os.lstat(failed / "fifo.jsonl").st_mode)
    _assert_rejected(harness, "link.jsonl", None, "it is a symbolic link")
    assert os.readlink(failed / "link.jsonl") == str(link_target)  # the link itself, not what it points to
    assert link_target.read_text() == request_file(2, prefix="t")
    assert link_target.stat().st_nlink == 1, "the link's target was hard-linked into failed/"

    if IS_ROOT:  # root reads a mode-000 file; see test_unreadable_file_is_rejected for everyone else
        accepted_jobs["locked.jsonl"] = _assert_accepted(harness, "locked.jsonl", ["l0", "l1"])
    else:
        _assert_rejected(harness, "locked.jsonl", None, "it cannot be read")

    # A name at NAME_MAX: the report beside it must still fit.
    long_job = _assert_rejected(harness, long_name, 1, "not valid JSON")
    assert Path(long_job.final_path or "").read_bytes() == b"not json\n"

    # Deleted before it could be claimed: no trace.
    assert harness.job("vanish.jsonl") is None
    assert not (failed / "vanish.jsonl").exists()
    assert not (harness.settings.uploaded / "vanish.jsonl").exists()

    # A name that cannot be recorded stays where it is, reported once.
    assert os.path.exists(os.path.join(os.fsencode(pending), bad_name))
    assert len(_events(logs, "file_name_not_utf8")) == 1

    # Only accepted inputs were uploaded, each part exactly once.
    accepted_ids = {job.id for job in accepted_jobs.values()}
    batches = emulator.batches()
    assert {b["metadata"]["batchd_job"] for b in batches} == accepted_ids
    keys = [(b["metadata"]["batchd_job"], b["metadata"]["batchd_part"]) for b in batches]
    assert len(keys) == len(set(keys))
    assert len([f for f in emulator.files() if f["purpose"] == "batch"]) == len(batches)

    # The daemon never stopped, and nothing crashed along the way.
    assert harness.thread is not None and harness.thread.is_alive()
    assert harness.engine.poller.is_alive()
    assert not _events(logs, "step_crashed")
    assert not _events(logs, "poll_crashed")


@pytest.mark.skipif(IS_ROOT, reason="root can read a mode-000 file, so it cannot be made unreadable here")
def test_unreadable_file_is_rejected(harness: Harness, tmp_path: Path) -> None:
    locked = tmp_path / "locked.jsonl"
    locked.write_text(request_file(2))
    locked.chmod(0)
    os.rename(locked, harness.settings.pending / "locked.jsonl")
    harness.drop("good.jsonl", request_file(1))
    harness.wait_job("locked.jsonl", JobState.REJECTED)
    _assert_rejected(harness, "locked.jsonl", None, "it cannot be read")
    harness.wait_job("good.jsonl")


def test_over_byte_limit_splits_in_order_and_an_oversized_line_is_rejected(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    limit = 1500
    harness = harness_factory(max_bytes_per_batch=limit, max_requests_per_batch=100).start()
    harness.drop("over_bytes.jsonl", request_file(30, prefix="o"))
    huge = request_line("h1").replace("question h1", "y" * 2000)
    harness.drop("huge_line.jsonl", request_line("h0") + "\n" + huge + "\n")
    job = harness.wait_job("over_bytes.jsonl")
    assert [r["custom_id"] for r in harness.results("over_bytes.jsonl")] == [f"o{i}" for i in range(30)]
    mine = [b for b in emulator.batches() if b["metadata"]["batchd_job"] == job.id]
    mine.sort(key=lambda b: int(b["metadata"]["batchd_part"].split(".")[0]))
    inputs = [emulator.file_bytes(b["input_file_id"]) for b in mine]
    assert len(inputs) > 1
    assert all(len(data) <= limit for data in inputs)
    assert [cid for data in inputs for cid in _custom_ids(data)] == [f"o{i}" for i in range(30)]
    harness.wait_job("huge_line.jsonl", JobState.REJECTED)
    _assert_rejected(harness, "huge_line.jsonl", 2, "over the 1,500-byte batch limit")


def test_burst_of_split_files_all_finish_cleanly(
    harness_factory: Callable[..., Harness], logs: list[MutableMapping[str, Any]]
) -> None:
    """Many multi-part jobs finishing together: each is merged and archived exactly once."""
    harness = harness_factory(max_requests_per_batch=2).start()
    names = [f"burst-{i}.jsonl" for i in range(12)]
    for n, name in enumerate(names):
        harness.drop(name, request_file(6, prefix=f"{n}-"))
    for n, name in enumerate(names):
        job = harness.wait_job(name)
        assert [r["custom_id"] for r in harness.results(name)] == [f"{n}-{i}" for i in range(6)]
        assert job.final_path == str(harness.settings.uploaded / name)
        assert Path(job.final_path).read_text() == request_file(6, prefix=f"{n}-")
    assert sorted(p.name for p in harness.settings.uploaded.iterdir()) == sorted(names)
    assert not _events(logs, "step_crashed")
