"""The command line as users call it: validate, status, healthcheck, help, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.support import Harness, request_file


def test_validate_exit_codes_and_line_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(request_file(3))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(request_file(1) + "oops\n")
    assert main(["validate", str(good)]) == 0
    assert "ok (3 requests, /v1/chat/completions, model gpt-4o-mini)" in capsys.readouterr().out
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "bad.jsonl: 1 problem(s)" in out
    assert "line 2: not valid JSON" in out


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_status_and_healthcheck_while_running(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.drop("s.jsonl", request_file(4))
    harness.wait_job("s.jsonl")
    root = str(harness.settings.root)
    assert main(["status", "--root", root, "--json"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out[out.index('{\n  "jobs"') :])["jobs"]  # the engine's own log lines come first
    assert [(r["file"], r["state"], r["requests_done"], r["requests_total"]) for r in rows] == [
        ("s.jsonl", "done", 4, 4)
    ]
    assert main(["status", "--root", root]) == 0
    table = capsys.readouterr().out
    header = ["FILE", "STATE", "BATCHES", "PROGRESS", "OK/FAILED/NOT-RUN", "TOKENS", "COST", "AGE"]
    assert table.splitlines()[0].split() == header
    assert table.splitlines()[1].split()[4] == "4/0/0"
    assert "4/4" in table
    assert main(["healthcheck", "--root", root]) == 0
    assert capsys.readouterr().out.startswith("ok")


def test_healthcheck_fails_after_stop(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.stop()
    assert main(["healthcheck", "--root", str(harness.settings.root)]) == 1
    assert "stopped" in capsys.readouterr().out


def test_status_without_state_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--root", str(tmp_path)]) == 1
    assert "has `batchd run` been started" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["run", "validate", "status", "cancel", "abandon", "healthcheck", "recover", "emulator"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: batchd" in capsys.readouterr().out
