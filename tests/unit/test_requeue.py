"""`batchd retry NAME`: a fixed input goes from failed/ back to the drop zone, safely, while running."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.support import request_file


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
