"""Server start/stop, storage location and the command-line entry point."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import httpx2
import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.cli import add_emulator_arguments, run_emulator_command, settings_from_arguments
from tests.support import wait_until


def test_private_data_dir_is_removed_on_stop() -> None:
    server = EmulatorServer(EmulatorSettings()).start()
    root = server.data_dir
    assert root.is_dir()
    server.stop()
    server.stop()  # idempotent
    assert not root.exists()


def test_given_data_dir_is_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    with EmulatorServer(EmulatorSettings(data_dir=data_dir)) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert data_dir.is_dir()


def test_stop_closes_idle_keep_alive_connections() -> None:
    server = EmulatorServer(EmulatorSettings()).start()
    with httpx2.Client() as http:
        assert http.get(f"{server.url}/_emulator/health").json() == {"status": "ok"}
        server.stop()
        with pytest.raises(httpx2.HTTPError):
            http.get(f"{server.url}/_emulator/health")


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="request_error_rate"):
        EmulatorSettings(request_error_rate=1.5)
    with pytest.raises(ValueError, match="durations"):
        EmulatorSettings(validating_seconds=-1)


def test_cli_serves_until_stop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    args = parser.parse_args(
        ["--port", "0", "--data-dir", str(tmp_path / "d"), "--seed", "3", "--token-limit", "100", "--error-rate", "0"]
    )
    assert args.token_limit == 100
    assert args.validating_seconds == 1.0
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(run_emulator_command(args, stop)))
    runner.start()
    output: list[str] = []

    def listening_line() -> str | None:
        output.append(capsys.readouterr().out)
        text = "".join(output)
        return text if "OPENAI_API_KEY=" in text else None

    printed = wait_until(listening_line, 5.0, "the listening line and the client's lines", every=0.01)
    line = printed.splitlines()[0].strip()
    assert line.startswith("emulator listening on http://127.0.0.1:")
    assert line.endswith("/v1")
    with httpx2.Client() as http:
        root = line.removeprefix("emulator listening on ").removesuffix("/v1")
        assert http.get(f"{root}/_emulator/health").status_code == 200
    # The two lines a client needs, ready to paste into a shell.
    assert f"export OPENAI_BASE_URL={root}/v1\n" in printed
    assert "export OPENAI_API_KEY=emulator-key" in printed
    stop.set()
    runner.join(5)
    assert result == [0]


def test_result_faults_can_be_switched_on_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    plain = settings_from_arguments(parser.parse_args([]))
    assert not plain.string_bodies and not plain.drop_cancelled_results
    settings = settings_from_arguments(parser.parse_args(["--string-bodies", "--drop-cancelled-results"]))
    assert settings.string_bodies and settings.drop_cancelled_results
