"""An error of several lines (a retry refused with the problems still in the file) prints as lines,
not as one line full of \\n; escape sequences in it are still escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.main import main

BARE = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}\n' * 3


def test_a_refused_retry_lists_its_problems_on_lines_of_their_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "failed").mkdir()
    (tmp_path / "pending_upload").mkdir()
    (tmp_path / "failed" / "blog\x1b[31m.jsonl").write_text(BARE)
    assert main(["retry", "--root", str(tmp_path), "blog\x1b[31m.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "\n  all 3 lines: this line is a bare request body" in err
    assert "\\n" not in err
    assert "\x1b" not in err and "\\x1b" in err, "the escape in the name is still shown escaped"
