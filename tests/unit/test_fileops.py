"""fileops: names taken from users' files stay one harmless path component; moves never clobber."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemon.state.fileops import free_name, move_no_clobber, safe_component, write_atomic

HOSTILE = ["..", ".", "", "../../etc/passwd", "a/b", "a\\b", ".hidden", "x\nevil", "\x00\x1f", "é" * 300, " .. "]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_component_is_one_plain_component(name: str, tmp_path: Path) -> None:
    safe = safe_component(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert not any(ord(ch) < 32 for ch in safe)
    assert len(safe.encode()) <= 200
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_free_name_never_returns_a_taken_name(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("first")
    (tmp_path / "a.job1.jsonl").write_text("second")
    assert free_name(tmp_path, "a.jsonl", "job1") == tmp_path / "a.job1-2.jsonl"


def test_move_no_clobber_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "src").write_text("new")
    (tmp_path / "dest").write_text("precious")
    with pytest.raises(FileExistsError):
        move_no_clobber(tmp_path / "src", tmp_path / "dest")
    assert (tmp_path / "dest").read_text() == "precious" and (tmp_path / "src").exists()


def test_write_atomic_creates_owner_only_files(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        write_atomic(tmp_path / "f", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
