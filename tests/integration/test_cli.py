"""The command line as users call it: validate, status, healthcheck, help, exit codes."""

from __future__ import annotations

import json

import pytest

from daemon.cli.main import main
from tests.support import Harness, request_file


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
    # The job id came last (issue 16): the columns before it keep their places.
    header = ["FILE", "STATE", "BATCHES", "PROGRESS", "OK/FAILED/NOT-RUN", "TOKENS", "COST", "AGE", "JOB"]
    assert table.splitlines()[0].split() == header
    assert table.splitlines()[1].split()[4] == "4/0/0"
    assert "4/4" in table
    assert main(["healthcheck", "--root", root]) == 0
    assert capsys.readouterr().out.startswith("ok")


def test_healthcheck_fails_after_stop(harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.stop()
    assert main(["healthcheck", "--root", str(harness.settings.root)]) == 1
    assert "stopped" in capsys.readouterr().out
