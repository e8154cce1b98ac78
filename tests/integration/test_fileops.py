"""fileops: names taken from users' files stay one harmless path component; moves never clobber."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from daemon.state.states import JobState
from tests.support import Harness, request_file


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode) for p in [folder, *folder.rglob("*")]}


@pytest.mark.parametrize("name", ["a..jsonl", "-rf .jsonl", "x\nnew line.jsonl", "é" * 120 + ".jsonl"])
def test_hostile_input_names_stay_inside_results_and_results_are_owner_only(harness: Harness, name: str) -> None:
    harness.drop(name, request_file(2))
    job = harness.wait_job(name)
    assert job.state == JobState.DONE and job.result_dir and job.final_path
    results, uploaded = harness.settings.results.resolve(), harness.settings.uploaded.resolve()
    assert Path(job.result_dir).resolve().parent == results
    assert Path(job.final_path).resolve().parent == uploaded
    assert [r["custom_id"] for r in harness.results(name)] == ["r0", "r1"]
    for path, mode in {**_modes(harness.settings.results), **_modes(harness.settings.state)}.items():
        assert mode & 0o077 == 0, f"{path} is open to others: {oct(mode)}"
