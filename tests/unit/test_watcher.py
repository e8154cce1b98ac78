"""The watcher: only events that can make a file claimable become hints, and none of our own moves do."""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.intake.watcher import Hint, start_observer

WAIT = 10.0  # seconds for an event to arrive; they usually take milliseconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, queue.Queue[Hint | None]]]:
    folder = tmp_path / "pending_upload"
    folder.mkdir()
    hints: queue.Queue[Hint | None] = queue.Queue()
    observer = start_observer(folder, hints, "inotify")
    try:
        yield folder, hints
    finally:
        observer.stop()
        observer.join(timeout=5)


def hints_until(hints: queue.Queue[Hint | None], folder: Path, marker: str = "marker") -> list[tuple[str, bool]]:
    """Every hint up to the first one for a marker file created now: events arrive in order, so
    what came before it is everything the earlier steps caused (earlier markers' hints left out)."""
    (folder / f"{marker}.jsonl").touch()
    seen: list[tuple[str, bool]] = []
    while True:
        hint = hints.get(timeout=WAIT)
        assert hint is not None
        if hint.path.name == f"{marker}.jsonl":
            return seen
        if not hint.path.name.startswith("marker"):
            seen.append((hint.path.name, hint.complete))


def test_a_file_written_in_many_writes_gives_one_hint_for_creation_and_one_for_the_close(
    watched: tuple[Path, queue.Queue[Hint | None]],
) -> None:
    folder, hints = watched
    with open(folder / "big.jsonl", "wb") as fh:
        for _ in range(200):
            fh.write(b"x" * 1000)
            fh.flush()  # one write(2), one IN_MODIFY each: none of them may become a hint
    assert hints_until(hints, folder) == [("big.jsonl", False), ("big.jsonl", True)]


def rename_in(staging: Path, folder: Path) -> None:
    """Drop in.jsonl the way a careful producer does: written elsewhere, then renamed into place."""
    (staging / "staged.jsonl").write_bytes(b"{}\n")
    os.rename(staging / "staged.jsonl", folder / "in.jsonl")


def test_a_file_renamed_in_gives_one_complete_hint(
    watched: tuple[Path, queue.Queue[Hint | None]], tmp_path: Path
) -> None:
    folder, hints = watched
    rename_in(tmp_path, folder)
    assert hints_until(hints, folder) == [("in.jsonl", True)]


def test_a_claim_by_link_and_unlink_gives_no_hint(
    watched: tuple[Path, queue.Queue[Hint | None]], tmp_path: Path
) -> None:
    folder, hints = watched
    rename_in(tmp_path, folder)
    assert hints_until(hints, folder) == [("in.jsonl", True)]
    os.link(folder / "in.jsonl", tmp_path / "claimed.jsonl")  # what intake does to take a file
    os.unlink(folder / "in.jsonl")
    assert hints_until(hints, folder, "marker-2") == []
