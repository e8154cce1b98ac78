"""What the command line tells a new user: descriptions, exit codes, help topics, a closed pipe, start-up errors."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from daemon.cli import main as cli
from daemon.cli.completion import walk_commands
from daemon.config import Settings
from daemon.engine import runner
from daemon.engine.emulated_profiles import EMULATOR_DIR
from daemon.errors import CredentialError, FolderError
from daemon.service.credentials import find_key_source
from daemon.state import folders
from tests.support import request_file


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_a_description(name: str) -> None:
    command = _commands()[name]
    assert command.description, f"`batchd {name} --help` says nothing about what it does"
    opening = " ".join(command.description.split()[:4])  # argparse may wrap the rest at any hyphen
    assert opening in " ".join(command.format_help().split())


def test_exit_codes_are_listed_in_the_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    assert "RestartPreventExitStatus=2" in out


def test_help_topics(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["help"]) == 0
    listed = capsys.readouterr().out
    assert "exit-codes" in listed and "emulator" in listed
    assert cli.main(["help", "emulator"]) == 0
    assert "fail-validation" in capsys.readouterr().out  # the trigger words, not only in a docstring
    assert cli.main(["help", "metadata"]) == 0
    assert "BATCHD_METADATA=" in capsys.readouterr().out
    assert cli.main(["help", "retry"]) == 0
    assert "usage: batchd retry" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["help", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_the_emulator_help_names_its_triggers_and_faults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["emulator", "--help"])
    out = capsys.readouterr().out
    for word in ("fail-validation", "expire", "fail-all", "/_emulator/faults", "/_emulator/batches", "OPENAI_BASE_URL"):
        assert word in out


class _ClosedPipe(io.StringIO):
    """stdout after `| head -1` has read its line and gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_the_command_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(request_file(2))
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert cli.main(["validate", str(good), str(good)]) == 1  # returns, raises nothing
    assert "Traceback" not in capsys.readouterr().err


def test_completion_scripts_cover_every_command_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    commands = walk_commands(cli.build_parser())
    assert {c.name for c in commands} == set(_commands())
    for shell in ("bash", "zsh"):
        assert cli.main(["completion", shell]) == 0
        script = capsys.readouterr().out
        for command in commands:
            assert f"{command.name})" in script
            for option in command.options:
                assert all(flag in script for flag in option.flags), (shell, command.name, option.flags)
    retry = next(c for c in commands if c.name == "retry")
    assert any(o.flags == ("--root",) and o.path == "dir" for o in retry.options)


def test_run_creates_a_missing_root_but_not_its_parents(tmp_path: Path) -> None:
    folders.prepare(Settings(root=tmp_path / "batches"))
    assert (tmp_path / "batches" / "pending_upload").is_dir()
    with pytest.raises(FolderError, match="neither does its parent"):
        folders.prepare(Settings(root=tmp_path / "typo" / "batches"))
    assert not (tmp_path / "typo").exists()


def test_configuration_problems_exit_2_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_API_KEY_FILE", "CREDENTIALS_DIRECTORY", "BATCHD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["run", "--root", str(tmp_path)]) == 2  # no key at all
    assert "no OpenAI API key" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(tmp_path / "absent-key"))
    assert cli.main(["run", "--root", str(tmp_path)]) == 2  # a key file that is not there
    assert "OPENAI_API_KEY_FILE= (empty)" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abc")
    assert cli.main(["run", "--root", str(tmp_path / "no" / "root")]) == 2  # the key now found; no parent
    assert "neither does its parent" in capsys.readouterr().err


def test_an_environment_key_wins_over_a_key_file_that_does_not_exist(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY_FILE": str(tmp_path / "absent"), "OPENAI_API_KEY": "sk-from-env"}
    source = find_key_source(env)  # the image always sets OPENAI_API_KEY_FILE
    assert source.read() == "sk-from-env"
    assert "does not exist" in source.description
    with pytest.raises(CredentialError, match="OPENAI_API_KEY_FILE= "):
        find_key_source({"OPENAI_API_KEY_FILE": str(tmp_path / "absent")})
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    assert find_key_source({"OPENAI_API_KEY_FILE": str(key_file), "OPENAI_API_KEY": "sk-env"}).read() == "sk-from-file"


def test_another_daemon_on_the_root_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folders.prepare(Settings(root=tmp_path))
    holder = folders.InstanceLock(tmp_path / "state")
    holder.acquire()
    monkeypatch.setattr(runner, "LOCK_PATIENCE", 0.3)
    try:
        assert cli.main(["run", "--emulator", "--root", str(tmp_path)]) == 2
    finally:
        holder.release()
    assert "already running on this root" in capsys.readouterr().err
    assert not (tmp_path / EMULATOR_DIR).exists(), "no emulator was started for a root it cannot lock"


def test_ctrl_c_before_a_command_handles_signals_ends_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_validate", interrupted)
    assert cli.main(["validate", "x.jsonl"]) == 130
    assert capsys.readouterr().err == "batchd: interrupted\n"


def test_a_demo_state_that_cannot_be_read_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / EMULATOR_DIR).mkdir()
    (tmp_path / EMULATOR_DIR / "state.json").write_text("[]")
    assert cli.main(["run", "--emulator", "--root", str(tmp_path)]) == 2
    assert "move the folder away" in capsys.readouterr().err


def test_split_by_model_has_a_help_topic_saying_where_the_setting_goes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["help"]) == 0
    assert "  split-by-model\n" in capsys.readouterr().out
    assert cli.main(["help", "split-by-model"]) == 0
    out = capsys.readouterr().out
    for said in ("split_by_model = true", "above the first [table]", "[providers.NAME]", "BATCHD_SPLIT_BY_MODEL=true"):
        assert said in out


def test_the_emulator_help_names_the_anthropic_flavours_triggers(capsys: pytest.CaptureFixture[str]) -> None:
    """Named in the help itself: a user with the installed package has no source file to look them up in."""
    with pytest.raises(SystemExit):
        cli.main(["emulator", "--help"])
    out = capsys.readouterr().out
    for word in ("fail-request", "fail-overloaded", "fail-rate-limit", "fail-api-error"):
        assert word in out
    assert "anthropic_requests.py" not in out
