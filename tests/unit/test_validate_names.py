"""`batchd validate` on a file the drop zone would not take by its name (`requests.json`) says so, and the
fix it suggests for a JSON array writes a name the drop zone takes: otherwise the user follows it and the
file sits in pending_upload/, ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.support import request_file


def test_a_valid_file_named_json_is_told_the_name_to_drop_it_under(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "requests.json"
    path.write_text(request_file(2))
    assert main(["validate", str(path)]) == 0
    assert "drop it as requests.jsonl" in capsys.readouterr().out


def test_the_fix_for_a_json_array_file_writes_a_jsonl_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([json.loads(line) for line in request_file(2).splitlines()], indent=4))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"batchd wrap {path} -o {tmp_path / 'tasks.jsonl'}`" in out
    assert "drop it as" not in out, "the fix already names it"


def test_a_jsonl_file_gets_no_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "UPPER.JSONL"
    path.write_text(request_file(2))
    assert main(["validate", str(path)]) == 0
    assert "note:" not in capsys.readouterr().out
