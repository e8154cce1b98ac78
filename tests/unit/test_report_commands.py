"""A report in failed/ is read from anywhere (the demo's user sits in the repository, the root is demo/),
but its commands name failed/NAME and `batchd retry NAME`, which work inside the root only: it says so."""

from __future__ import annotations

from daemon.config import Settings
from daemon.intake.preparer import prepare_jobs
from daemon.state.store import Store
from tests.unit.test_conversion import BARE, claimed


def test_a_report_says_where_its_commands_run(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "blog.jsonl", (BARE % 1).encode())
    prepare_jobs(settings, store, [job])
    report = (settings.failed / "blog.jsonl.report.txt").read_text()
    assert "batchd wrap failed/blog.jsonl" in report
    assert f"inside the daemon's root, {settings.root} (`cd` there first" in report
    assert f"`--root {settings.root}`" in report
