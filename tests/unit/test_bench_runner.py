"""The `make bench` runner's table: every verdict line counts, and a broken script is a MISS."""

from __future__ import annotations

import pytest

from bench.__main__ import Outcome, summarize


def test_every_miss_and_every_broken_script_counts(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = [
        Outcome("fast", ["PASS: p95 0.1 s <= 1 s", "MISS: 2.0x < 1.5x"], 0, 1.0),
        Outcome("crashed", ["PASS: a figure before the crash"], 2, 1.0),
        Outcome("silent", [], 0, 1.0),
    ]
    assert summarize(outcomes, 3.0) == 3
    table = capsys.readouterr().out
    assert "fast     MISS     2.0x < 1.5x" in table
    assert "crashed  MISS     the script exited with status 2" in table
    assert "silent   MISS     the script printed no verdict line" in table
    assert table.rstrip().endswith("3 MISS of 5 figures")


def test_all_passing_is_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert summarize([Outcome("fast", ["PASS: p95 0.1 s <= 1 s"], 0, 1.0)], 1.0) == 0
