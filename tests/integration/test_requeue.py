"""`batchd retry NAME`: a fixed input goes from failed/ back to the drop zone, safely, while running."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.state.states import JobState
from tests.support import FAST, Harness, fast_settings, request_file, request_line, wait_until

BAD = '{"model": "gpt-4o-mini", "messages": []}\n'


def _retry(harness: Harness, *args: str) -> int:
    return main(["retry", "--root", str(harness.settings.root), *args])


def _rejected(harness: Harness, name: str) -> Path:
    harness.drop(name, BAD)
    harness.wait_job(name, JobState.REJECTED)
    return harness.settings.failed / name


def test_fixed_input_runs_again(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    failed = _rejected(harness, "fix-me.jsonl")
    first = harness.job("fix-me.jsonl")
    assert first is not None
    assert _retry(harness, "fix-me.jsonl") == 1  # not fixed yet: refused, with the problems
    err = capsys.readouterr().err
    assert "still has 1 problem(s)" in err and "line 1" in err and "--force" in err
    assert failed.exists()
    failed.write_text(request_file(3))
    assert _retry(harness, "fix-me.jsonl") == 0
    out = capsys.readouterr().out
    assert "pending_upload" in out
    assert not failed.exists()
    assert not (harness.settings.failed / "fix-me.jsonl.report.txt").exists()
    kept = list((harness.settings.failed / "retried").iterdir())
    assert [p.name for p in kept] == ["fix-me.jsonl.report.txt"]
    again = wait_until(lambda: (j := harness.job("fix-me.jsonl")) and j.id != first.id and j, what="a new job")
    harness.wait_job("fix-me.jsonl")
    assert again.id != first.id
    assert len(harness.results("fix-me.jsonl")) == 3


def test_by_job_id_and_tagged_name_goes_back_under_its_own_name(harness: Harness) -> None:
    _rejected(harness, "twice.jsonl")
    first = harness.job("twice.jsonl")
    harness.drop("twice.jsonl", BAD)
    second = wait_until(lambda: (j := harness.job("twice.jsonl")) and j.id != (first and first.id) and j)
    harness.wait_job("twice.jsonl", JobState.REJECTED)
    tagged = harness.settings.failed / f"twice.{second.id}.jsonl"
    assert tagged.exists()
    assert _retry(harness, "twice.jsonl") == 1  # two failed inputs answer to that name: ambiguous
    harness.stop()  # no daemon: the file must stay in the drop zone to be looked at
    tagged.write_text(request_file(1))
    assert _retry(harness, second.id) == 0
    assert (harness.settings.pending / "twice.jsonl").read_text() == request_file(1)
    assert (harness.settings.failed / "twice.jsonl").exists()  # the other one is untouched


def test_never_replaces_a_waiting_file(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    failed = _rejected(harness, "busy.jsonl")
    failed.write_text(request_file(1))
    harness.stop()
    (harness.settings.pending / "busy.jsonl").write_text("someone else's\n")
    assert _retry(harness, "busy.jsonl") == 1
    assert "already waiting" in capsys.readouterr().err
    assert (harness.settings.pending / "busy.jsonl").read_text() == "someone else's\n"
    assert failed.read_text() == request_file(1)
    assert (harness.settings.failed / "busy.jsonl.report.txt").exists()


def test_unknown_names_and_reports_are_explained(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    _rejected(harness, "there.jsonl")
    assert _retry(harness, "missing.jsonl") == 1
    err = capsys.readouterr().err
    assert "no input called 'missing.jsonl'" in err and "there.jsonl" in err
    assert _retry(harness, "there.jsonl.report.txt") == 1
    assert "retry the input it describes: there.jsonl" in capsys.readouterr().err
    assert _retry(harness, "/elsewhere/there.jsonl") == 1
    assert "give the name of a file in failed/" in capsys.readouterr().err


def test_force_sends_it_as_it_is(harness: Harness) -> None:
    _rejected(harness, "as-is.jsonl")
    harness.stop()
    assert _retry(harness, "as-is.jsonl", "--force") == 0
    assert (harness.settings.pending / "as-is.jsonl").read_text() == BAD


def _mixed_input() -> bytes:
    """Requests written the way a person might: odd spacing, a CRLF line, a blank line."""
    lines = [request_line(f"m{i}", model="gpt-expire").encode() + b"\n" for i in range(12)]
    lines[3] = lines[3].replace(b'", "', b'",  "').replace(b"\n", b"\r\n")
    lines[6] = b" " + lines[6]
    return b"".join(lines[:7]) + b"\n" + b"".join(lines[7:])


def test_retry_failed_drops_exactly_the_failed_and_unrun_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = _mixed_input()
    with EmulatorServer(EmulatorSettings(**FAST, data_dir=tmp_path / "em", request_error_rate=0.4)) as emulator:  # type: ignore[arg-type]
        harness = Harness(fast_settings(root, emulator.base_url, resubmit_unfinished=frozenset()), emulator).start()
        try:
            harness.drop("mix.jsonl", data)
            harness.wait_job("mix.jsonl")
            results = harness.results("mix.jsonl")
        finally:
            harness.stop()
        capsys.readouterr()
        kinds = {("ok" if r["error"] is None and r["response"]["status_code"] == 200 else "bad") for r in results}
        assert kinds == {"ok", "bad"}
        assert {r["error"]["code"] for r in results if r["error"]} == {"batch_expired"}
        assert any(r["response"] and r["response"]["status_code"] == 400 for r in results)  # failed, not only unrun
        unsuccessful = {r["custom_id"] for r in results if r["error"] or r["response"]["status_code"] != 200}
        wanted = b"".join(x for x in data.splitlines(keepends=True) if x.strip() and _cid(x) in unsuccessful)

        assert _retry(harness, "mix.jsonl", "--failed") == 0
        assert f"dropped {len(unsuccessful)} failed or not-run request(s)" in capsys.readouterr().out
        dropped = harness.settings.pending / "mix.retry-failed.jsonl"
        assert dropped.read_bytes() == wanted  # the original lines, byte for byte, in input order
        assert {"m3", "m6"} <= unsuccessful  # seed 0 picks them; their odd bytes must survive
        assert b'",  "' in wanted and b"\r\n" in wanted and b"\n {" in wanted
        assert not [p for p in harness.settings.pending.iterdir() if p.name.startswith(".")]

        assert _retry(harness, "mix.jsonl", "--failed") == 0  # the first is still waiting: a free name
        assert (harness.settings.pending / "mix.retry-failed-2.jsonl").read_bytes() == wanted
        (harness.settings.pending / "mix.retry-failed-2.jsonl").unlink()

        harness = Harness(harness.settings, emulator).start()  # the daemon takes it like any input
        try:
            harness.wait_job("mix.retry-failed.jsonl")
            again = harness.results("mix.retry-failed.jsonl")
        finally:
            harness.stop()
    assert [r["custom_id"] for r in again] == [_cid(x) for x in wanted.splitlines()]


def _cid(raw: bytes) -> str:
    return str(json.loads(raw)["custom_id"])


def test_retry_failed_refuses_when_nothing_failed(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.drop("fine.jsonl", request_file(3))
    harness.wait_job("fine.jsonl")
    assert _retry(harness, "fine.jsonl", "--failed") == 1
    assert "every request of fine.jsonl" in capsys.readouterr().err
    assert [p.name for p in harness.settings.pending.iterdir()] == []


def test_retry_failed_refuses_a_job_that_has_not_finished(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.server.faults.add_rule(action="status", method="POST", path_prefix="/v1/files", status=500)
    harness.drop("busy.jsonl", request_file(3))
    harness.wait_job("busy.jsonl", JobState.ACTIVE)
    assert _retry(harness, "busy.jsonl", "--failed") == 1
    err = capsys.readouterr().err
    assert "is still active" in err and "batchd status" in err
    assert _retry(harness, "nothing.jsonl", "--failed") == 1
    assert "no job for an input called 'nothing.jsonl'" in capsys.readouterr().err


def test_retry_failed_warns_about_requests_that_may_have_run(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # The service keeps 2 lines of 5 back for good: their requests ran (and were paid for) as far as we know.
    emulator.faults.add_rule(action="tamper", mode="drop_lines", lines=2, count=1000)
    harness = harness_factory(verify_downloads_for=0).start()
    harness.drop("lost.jsonl", request_file(5))
    harness.wait_job("lost.jsonl")
    assert sum(r["error"] is not None for r in harness.results("lost.jsonl")) == 2
    capsys.readouterr()
    assert _retry(harness, "lost.jsonl", "--failed") == 0
    out = capsys.readouterr().out
    assert "dropped 2 failed or not-run request(s)" in out
    assert "2 of them may have run and been paid for" in out


def test_a_retried_input_is_claimed_at_once_not_at_the_next_rescan(
    harness_factory: Callable[..., Harness], capsys: pytest.CaptureFixture[str]
) -> None:
    # Without a rescan or a min_file_age to fall back on, only the watcher's event can bring it in.
    harness = harness_factory(scan_interval=3600.0, min_file_age=60.0).start()
    failed = _rejected(harness, "late.jsonl")
    first = harness.job("late.jsonl")
    assert first is not None
    failed.write_text(request_file(2))
    an_hour_ago = failed.stat().st_mtime - 3600
    os.utime(failed, (an_hour_ago, an_hour_ago))  # fixed a while ago: a link of it has an old mtime
    assert _retry(harness, "late.jsonl") == 0
    capsys.readouterr()
    wait_until(
        lambda: (job := harness.job("late.jsonl")) is not None and job.id != first.id,
        10.0,
        "the retried input claimed (a link gives only a creation event: no close, no rename)",
    )
