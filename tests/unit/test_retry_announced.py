"""`batchd retry` of an input fixed seconds ago is announced to the watcher as a finished file (a close
event), not only as a creation: the link that moves it proves nothing, and a file with a fresh mtime
then waited for min_file_age and the next rescan before it was claimed."""

from __future__ import annotations

import queue
import sys
from pathlib import Path

import pytest

from daemon.cli.retry import requeue
from daemon.config import Settings
from daemon.intake.watcher import Hint, start_observer
from daemon.state import folders
from tests.support import request_file

WAIT = 10.0  # seconds for an event to arrive; they usually take milliseconds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_a_freshly_fixed_input_moved_back_gives_a_close_hint(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    (settings.failed / "fixed.jsonl").write_text(request_file(2))  # just fixed: its mtime is now
    hints: queue.Queue[Hint | None] = queue.Queue()
    observer = start_observer(settings.pending, hints, "inotify")
    try:
        requeue(settings, "fixed.jsonl")
        (settings.pending / "marker.jsonl").touch()  # events come in order: all of the retry's are before it
        seen = []
        while (hint := hints.get(timeout=WAIT)) is not None and hint.path.name != "marker.jsonl":
            seen.append((hint.path.name, hint.complete, hint.closed))
    finally:
        observer.stop()
        observer.join(timeout=5)
    assert ("fixed.jsonl", True, True) in seen, seen
    assert (settings.pending / "fixed.jsonl").read_text() == request_file(2), "nothing written to it"
