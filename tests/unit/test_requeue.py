"""`batchd retry NAME`: a fixed input goes from failed/ back to the drop zone, safely, while running."""

from __future__ import annotations

import gzip
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


BARE = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}\n' * 3


def test_bare_bodies_go_back_only_when_intake_wraps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "failed").mkdir()
    (tmp_path / "pending_upload").mkdir()
    (tmp_path / "failed" / "blog.jsonl").write_text(BARE)
    assert main(["retry", "--root", str(tmp_path), "blog.jsonl"]) == 1
    assert "batchd wrap" in capsys.readouterr().err
    monkeypatch.setenv("BATCHD_WRAP_BARE_BODIES", "true")
    assert main(["retry", "--root", str(tmp_path), "blog.jsonl"]) == 0
    assert (tmp_path / "pending_upload" / "blog.jsonl").read_text() == BARE


def test_a_gzip_input_is_checked_decompressed(tmp_path: Path) -> None:
    (tmp_path / "failed").mkdir()
    (tmp_path / "pending_upload").mkdir()
    (tmp_path / "failed" / "packed.jsonl.gz").write_bytes(gzip.compress(request_file(2).encode()))
    assert main(["retry", "--root", str(tmp_path), "packed.jsonl.gz"]) == 0
    assert (tmp_path / "pending_upload" / "packed.jsonl.gz").exists()
