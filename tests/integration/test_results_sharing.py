"""results_group / results_mode: the people who drop files can read their results (tested with the
current user's own group, which it may always give files to)."""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError
from daemon.state.states import JobState
from tests.support import Harness, request_file


def _group() -> str:
    return grp.getgrgid(os.getegid()).gr_name


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_complete_results_get_the_group_and_mode(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(results_group=_group(), results_mode="0750").start()
    harness.drop("shared.jsonl", request_file(3))
    harness.wait_job("shared.jsonl")
    folder = harness.settings.results / "shared"
    gid = os.getegid()
    for path in (harness.settings.results, harness.settings.failed, folder):
        assert _mode(path) == 0o750, path
        assert path.stat().st_gid == gid
    files = [p for p in folder.iterdir() if p.is_file()]
    assert {"results.jsonl", "summary.json"} <= {p.name for p in files}
    for path in files:
        assert _mode(path) == 0o640, path  # the folder mode without the execute bits
        assert path.stat().st_gid == gid


def test_without_the_settings_results_stay_owner_only(harness: Harness) -> None:
    harness.drop("private.jsonl", request_file(1))
    harness.wait_job("private.jsonl")
    assert _mode(harness.settings.results / "private") == 0o700
    assert _mode(harness.settings.results / "private" / "summary.json") == 0o600


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_RESULTS_GROUP": "no-such-group-h17"}, "is not a group on this machine"),
        ({"BATCHD_RESULTS_MODE": "0644"}, "keep the owner's rwx"),
        ({"BATCHD_RESULTS_MODE": "rwxr-x---"}, "octal folder mode"),
    ],
)
def test_wrong_values_stop_the_start_naming_the_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_a_group_by_number_and_the_default_mode() -> None:
    settings = load_settings(environ={"BATCHD_RESULTS_GROUP": str(os.getegid())})
    assert settings.results_group == str(os.getegid())


def test_a_failed_input_and_its_report_get_the_group_and_mode(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(results_group=_group(), results_mode="0750").start()
    harness.drop("broken.jsonl", "not json at all\n")
    harness.wait_job("broken.jsonl", JobState.REJECTED)
    failed = harness.settings.failed
    reports = list(failed.glob("broken.jsonl*.report.txt"))
    assert len(reports) == 1, list(failed.iterdir())
    for path in (failed / "broken.jsonl", reports[0]):
        assert _mode(path) == 0o640, path
        assert path.stat().st_gid == os.getegid()
