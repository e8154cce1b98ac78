"""`make demo` a second time goes on where the first stopped: the examples are dropped on the first
run only, so a restarted demo runs no example again (it did: a second set of results each time)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _make_demo(tmp_path: Path) -> list[str]:
    """Run the Makefile's demo target with a stand-in batchd that records its arguments; the names
    dropped into the demo's pending_upload/ (its azure/ folder too)."""
    subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "demo", f"DEMO={tmp_path / 'demo'}", f"BIN={tmp_path}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pending = tmp_path / "demo" / "pending_upload"
    return sorted(str(p.relative_to(pending)) for p in pending.rglob("*.jsonl"))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_second_make_demo_drops_no_example_again(tmp_path: Path) -> None:
    fake = tmp_path / "batchd"  # newer than the sources, so make does not install over it
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    first = _make_demo(tmp_path)
    assert "movies.jsonl" in first and "azure/reviews.jsonl" in first
    assert "run --emulator --root" in (tmp_path / "calls").read_text()
    for name in first:  # the daemon claimed them and made its state
        (tmp_path / "demo" / "pending_upload" / name).unlink()
    (tmp_path / "demo" / "state").mkdir()
    assert _make_demo(tmp_path) == [], "a restart must not run the examples again"
