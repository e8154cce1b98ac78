"""The command line as users call it: validate, status, healthcheck, help, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.support import request_file


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


def test_status_without_state_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--root", str(tmp_path)]) == 1
    assert "has `batchd run` been started" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command", ["run", "validate", "wrap", "status", "cancel", "abandon", "healthcheck", "recover", "emulator"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: batchd" in capsys.readouterr().out
