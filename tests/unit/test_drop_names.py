"""Accepted names in the drop zone, and one file_ignored warning per other name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import Settings
from daemon.intake.claim import Intake
from daemon.intake.drop_names import is_request_file, request_stem
from daemon.state import folders
from daemon.state.store import Store
from tests.support import FakeClock, request_line

MIN_AGE = 1.0


@pytest.fixture(name="intake")
def intake_fixture(tmp_path: Path) -> Iterator[tuple[Intake, FakeClock]]:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    clock = FakeClock()
    yield Intake(settings.pending, settings.state, store, MIN_AGE, 0.0, clock, profiles={"azure"}), clock
    store.close()


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("a.jsonl", True),
        ("UPPER.JSONL", True),
        ("Mixed.JsonL", True),
        ("b.jsonl.gz", True),
        ("c.JSONL.GZ", True),
        ("requests.json", False),
        ("d.jsonl.tmp", False),
        (".e.jsonl", False),
        ("f.gz", False),
        ("g.csv", False),
    ],
)
def test_request_names(name: str, taken: bool) -> None:
    assert is_request_file(name) is taken


def test_request_stems() -> None:
    assert [request_stem(n) for n in ("a.JSONL", "b.jsonl.gz", "c.Jsonl.GZ")] == ["a", "b", "c"]


def test_every_other_name_is_reported_once_with_its_reason(intake: tuple[Intake, FakeClock]) -> None:
    zone, clock = intake
    for name in ("UPPER.JSONL", "requests.json", "notes.txt", "x.jsonl.gz", ".writing.jsonl", "y.jsonl.part"):
        (zone.pending / name).write_text(request_line("a") + "\n")
    (zone.pending / "azure").mkdir()
    (zone.pending / "azure" / "deeper").mkdir()
    (zone.pending / "azure" / "z.json").write_text("{}")
    with capture_logs() as captured:
        for _ in range(3):
            zone.ready_files()
            clock.advance(MIN_AGE + 0.1)
        ready = sorted(p.name for p in zone.ready_files())
    assert ready == ["UPPER.JSONL", "x.jsonl.gz"]
    ignored = {e["file"]: e["reason"] for e in captured if e["event"] == "file_ignored"}
    assert sorted(ignored) == ["azure/deeper", "azure/z.json", "notes.txt", "requests.json"]
    assert sum(e["event"] == "file_ignored" for e in captured) == 4, "once per name, not once per scan"
    assert "batchd wrap requests.json -o requests.jsonl" in ignored["requests.json"]
    assert "it is a folder" in ignored["azure/deeper"]
    assert all(e["log_level"] == "warning" for e in captured if e["event"] == "file_ignored")
