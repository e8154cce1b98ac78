"""Verified downloads: an output file that does not add up is fetched again, never taken as results.

The emulator tampers with GET /v1/files/{id}/content (a "tamper" fault rule): transiently (the
first download) or for good. Transient: the results end up whole and correct. For good: after
``verify_downloads_for`` what verifies is kept, the rest is reported, and nothing is deleted.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from daemon.intake.line_reader import CHUNK
from daemon.results import verification
from daemon.results.outcome import NEVER_RAN_CODES, NOT_RUN, RESULT_MISSING, missing_line, rank
from daemon.results.verification import Downloads, Verification, problem_entries
from daemon.service.batch_info import BatchInfo
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import request_file


def _batch(status: str, completed: int, failed: int = 0) -> BatchInfo:
    counts = {"total": 4, "completed": completed, "failed": failed}
    return BatchInfo.from_dict(
        {
            "id": "batch_t",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in",
            "completion_window": "24h",
            "status": status,
            "created_at": 1,
            "output_file_id": "file-out",
            "request_counts": counts,
        }
    )


def _out(cid: str, tag: str = "") -> str:
    return json.dumps(
        {"id": f"req{tag}", "custom_id": cid, "response": {"status_code": 200, "body": {}}, "error": None}
    )


def _downloads(tmp_path: Path, status: str, completed: int, output: list[str], errors: list[str]) -> Downloads:
    requests = tmp_path / "part.jsonl"
    requests.write_text(request_file(4))
    files = [("output", tmp_path / "batch_t_output.jsonl"), ("errors", tmp_path / "batch_t_errors.jsonl")]
    for (_, path), lines in zip(files, (output, errors), strict=True):
        path.write_text("".join(x + "\n" for x in lines))
    return Downloads(_batch(status, completed), files, requests)


def test_never_ran_lines_of_an_expired_batch_are_not_counted_as_results(tmp_path: Path) -> None:
    expired = json.dumps({"id": "x", "custom_id": "r3", "response": None, "error": {"code": "batch_expired"}})
    found = _downloads(tmp_path, "expired", 3, [_out("r0"), _out("r1"), _out("r2")], [expired])
    assert found.tally().problems(found.batch) == []
    short = _downloads(tmp_path, "expired", 3, [_out("r0"), _out("r1")], [expired, expired.replace("r3", "r2")])
    assert short.tally().problems(short.batch) == [
        "output had 2 lines and errors 2 (2 of them for requests that never ran), "
        "request_counts says 3 completed and 0 failed"
    ]


def test_an_accepted_download_is_settled_the_same_after_a_crash(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    try:
        lines = [_out("r0"), _out("r1"), _out("r0", "dup"), "<html>", _out("r2"), _out("r3"), _out("nobody")]
        downloads = _downloads(tmp_path, "completed", 4, lines, [])
        now = time.time()
        job = Job("job-1", "in.jsonl", "", "", JobState.ACTIVE, now, now)
        store.add_job(job)
        part = Part(job.id, 0, 0, str(downloads.requests), 1, 4, 10, 3, PartState.FINISHED, now, now, file_id="file-in")
        verification = Verification(store, window=0)
        assert verification.check(job, part, downloads) is False
        output, unmatched = downloads.files[0][1], tmp_path / "batch_t_unmatched.jsonl"
        settled = (output.read_bytes(), unmatched.read_bytes())
        assert [json.loads(x)["custom_id"] for x in settled[0].splitlines()] == ["r0", "r1", "r2", "r3"]
        assert settled[1].decode().splitlines() == [_out("r0", "dup"), "<html>", _out("nobody")]
        assert verification.check(job, part, downloads) is False, "a crash before the part was recorded: again"
        assert (output.read_bytes(), unmatched.read_bytes()) == settled
        assert {f.file_id: f.state for f in store.remote_files(job.id)} == {"file-in": "kept", "file-out": "kept"}
        (first, *rest) = problem_entries(store, [dataclasses.replace(part, batch_id="batch_t")])
        assert first["batch_id"] == "batch_t" and len(rest) == 2
    finally:
        store.close()


def test_result_missing_is_never_counted_as_never_ran() -> None:
    line = missing_line("r0", "completed")
    assert line["error"]["code"] == RESULT_MISSING not in NEVER_RAN_CODES
    assert rank(line) != NOT_RUN, "a request whose result is missing may have run: never resubmitted"


def test_a_result_line_too_big_to_read_is_kept_whole_among_the_unmatched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verification, "CEILING", CHUNK)  # stands for 200 MB in the unit tier
    huge = _out("r3").replace('"body": {}', '"body": {"b64_json": "' + "z" * (2 * CHUNK) + '"}')
    store = Store(tmp_path / "state.sqlite3")
    try:
        downloads = _downloads(tmp_path, "completed", 4, [_out("r0"), huge, _out("r1"), _out("r2")], [])
        assert (
            downloads.tally().problems(downloads.batch)[0]
            == f"1 line(s) with more than {CHUNK:,} bytes (too big to read): output line 2"
        )
        now = time.time()
        job = Job("job-1", "in.jsonl", "", "", JobState.ACTIVE, now, now)
        store.add_job(job)
        part = Part(job.id, 0, 0, str(downloads.requests), 1, 4, 10, 3, PartState.FINISHED, now, now, file_id="file-in")
        assert Verification(store, window=0).check(job, part, downloads) is False
    finally:
        store.close()
    output, unmatched = downloads.files[0][1], tmp_path / "batch_t_unmatched.jsonl"
    assert [json.loads(x)["custom_id"] for x in output.read_text().splitlines()] == ["r0", "r1", "r2"]
    assert unmatched.read_text() == huge + "\n", "never dropped: copied whole, in chunks"
