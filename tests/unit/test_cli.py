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


AZURE_TABLE = '[providers.azure]\nkind = "azure"\nbase_url = "https://res.openai.azure.com/openai/v1/"\n'


def test_validate_checks_a_file_for_its_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Azure's url form is refused for the default (OpenAI) profile, and taken for an azure one, named
    with --profile or told by the file's pending_upload/NAME/ folder; embeddings, which Azure does
    not batch, are refused there."""
    config = tmp_path / "batchd.toml"
    config.write_text(AZURE_TABLE)
    folder = tmp_path / "pending_upload" / "azure"
    folder.mkdir(parents=True)
    short = folder / "short.jsonl"
    short.write_text(request_file(2, url="/chat/completions"))
    assert main(["validate", "--config", str(config), str(short)]) == 0  # inferred from the folder
    expected = "short.jsonl: ok (2 requests, /chat/completions, model gpt-4o-mini, profile azure)"
    assert expected in capsys.readouterr().out
    elsewhere = tmp_path / "short.jsonl"
    elsewhere.write_text(request_file(2, url="/chat/completions"))
    assert main(["validate", "--config", str(config), str(elsewhere)]) == 1
    assert "a profile of kind azure accepts it" in capsys.readouterr().out
    assert main(["validate", "--config", str(config), "--profile", "azure", str(elsewhere)]) == 0
    embeddings = folder / "embed.jsonl"
    embeddings.write_text(request_file(1, url="/v1/embeddings", model="text-embedding-3-small"))
    assert main(["validate", "--config", str(config), str(embeddings)]) == 1
    assert "embed.jsonl: 1 problem(s) for profile azure" in capsys.readouterr().out
    assert main(["validate", "--config", str(config), "--profile", "default", str(embeddings)]) == 0


def test_validate_with_an_unknown_profile_names_the_configured_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "batchd.toml"
    config.write_text(AZURE_TABLE)
    good = tmp_path / "good.jsonl"
    good.write_text(request_file(1))
    assert main(["validate", "--config", str(config), "--profile", "azur", str(good)]) == 2
    assert "--profile azur: no such provider profile; configured: azure, default" in capsys.readouterr().err
