"""`batchd retry NAME`: a fixed input goes from failed/ back to the drop zone, safely, while running."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.states import JobState
from tests.conftest import Harness, request_file, wait_until

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


def test_without_a_state_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "failed").mkdir()
    (tmp_path / "pending_upload").mkdir()
    (tmp_path / "failed" / "hand.jsonl").write_text(request_file(2))
    assert main(["retry", "--root", str(tmp_path), "hand.jsonl"]) == 0
    assert (tmp_path / "pending_upload" / "hand.jsonl").exists()
    assert "kept as" not in capsys.readouterr().out  # there was no report to keep


def test_name_is_required() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["retry"])
    assert exc.value.code == 2
