"""A command run outside the daemon's root (the current folder taken for it) says so and exits 2,
naming --root: no traceback, no "no input called NAME" as if the input were missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.main import main


@pytest.mark.parametrize(
    "argv",
    [["cancel", "movies.jsonl"], ["abandon", "movies.jsonl"], ["retry", "movies.jsonl"], ["retry", "x", "--failed"]],
)
def test_a_command_outside_a_root_names_the_fix(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEY_FILE", "CREDENTIALS_DIRECTORY", "BATCHD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "demo" / "state").mkdir(parents=True)  # the real root is beside the current folder
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no batchd root here" in err and "--root DIR" in err
    assert "Traceback" not in err and not (tmp_path / "state").exists(), "nothing created in the wrong folder"


def test_status_outside_a_root_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 1
    assert "--root DIR" in capsys.readouterr().err
