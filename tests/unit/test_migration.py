"""Importing the seed script's batch_ids.txt: once, crash-safe, results collected like any other."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.ops.seed_import import DEFER_WAIT, SEED_FILE, SeedImport, parse_seed_file
from daemon.ops.signals import StopFlags
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.state import folders
from daemon.state.store import Store
from tests.support import TEST_KEY, fast_settings


def test_problems_are_reported_by_line_number() -> None:
    text = "a:batch_1\nno colon here\nb:null\n\n:batch_2\nc:not a batch id\nd:e:batch_3\r\n"
    entries, problems = parse_seed_file(text)
    assert [(e.line_no, e.name, e.batch_id) for e in entries] == [(1, "a", "batch_1"), (7, "d:e", "batch_3")]
    assert [n for n, _ in problems] == [2, 3, 5, 6]
    assert "no batch" in dict(problems)[3]


def test_unreachable_service_defers_the_import(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / SEED_FILE).write_text("a:batch_1\n")
    settings = fast_settings(root, "http://127.0.0.1:9/v1", request_timeout=0.5)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), settings.base_url, 0.5)
    stop = StopFlags().stop
    stop.set()  # no in-call waiting: one try, then the import is put off
    importer = SeedImport(settings, store, remote, stop)
    importer.run()
    assert (root / SEED_FILE).exists()
    assert store.jobs() == []
    assert not importer.due(time.time() + 10)  # tried again only minutes later
    assert importer.due(time.time() + DEFER_WAIT + 1)
    store.close()
    remote.close()
