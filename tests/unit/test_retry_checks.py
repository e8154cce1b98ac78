"""`batchd retry NAME` checks the input as the intake will: an input naming several models, rejected
while split_by_model was off, is sent back once the setting is on (top level or its profile's own),
and refused, naming the setting, while it is off."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli.retry import RequeueError, requeue
from daemon.config import Settings
from daemon.providers import Profile
from daemon.state import folders
from tests.support import request_line

MIXED = "".join(request_line(f"r{n}", model=m) + "\n" for n, m in enumerate(["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]))


def _failed_mixed(settings: Settings) -> None:
    folders.prepare(settings)
    (settings.failed / "mixed.jsonl").write_text(MIXED)


def test_a_mixed_input_goes_back_once_split_by_model_is_on(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, split_by_model=True)
    _failed_mixed(settings)
    done = requeue(settings, "mixed.jsonl")
    assert done.dest == settings.pending / "mixed.jsonl" and done.dest.read_text() == MIXED


def test_a_profiles_own_split_by_model_counts(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, providers={"default": Profile(name="default", split_by_model=True)})
    assert settings.splits_by_model("default")
    _failed_mixed(settings)
    assert requeue(settings, "mixed.jsonl").dest.read_text() == MIXED


def test_while_it_is_off_the_mixed_input_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    _failed_mixed(settings)
    with pytest.raises(RequeueError, match="split_by_model = true"):
        requeue(settings, "mixed.jsonl")
    assert (settings.failed / "mixed.jsonl").exists()
