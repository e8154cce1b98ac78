"""A watchdog observer that only turns file events into hints on a queue.

Events are hints, never the truth (watchdog can drop them: queue overflow, network mounts); the
periodic rescan in ``claim`` is. The handler never raises and never blocks.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver


@dataclass(frozen=True, slots=True)
class Hint:
    """A path in the drop zone, and whether the event proves its writer is done with it."""

    path: Path
    complete: bool
    # The proof is a close, not a rename: the writer may open the file again (an appending
    # producer), so it is claimed only once it has been quiet for ``settle_seconds``.
    closed: bool = False


class _Handler(FileSystemEventHandler):
    def __init__(self, hints: queue.Queue[Hint | None], on_hint: Callable[[], None]) -> None:
        self._hints = hints
        self._on_hint = on_hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            hint = _hint_for(event)
            if hint is not None:
                self._hints.put_nowait(hint)
                self._on_hint()
        except Exception:  # noqa: BLE001, S110 - an exception here would kill watchdog's thread; the rescan covers it
            pass


# Only the events that can make a file ready to claim, or announce one. With inotify this is the
# kernel's watch mask too: a file being written (one IN_MODIFY per write), our own claims (a link
# and an unlink each: IN_ATTRIB, IN_DELETE) and reads are never even queued, which keeps the
# observer's thread off the GIL while a burst of files is claimed.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [FileMovedEvent, FileClosedEvent, FileCreatedEvent]


def _hint_for(event: FileSystemEvent) -> Hint | None:
    if event.is_directory:
        return None
    if isinstance(event, FileMovedEvent):  # renamed into place, from inside or outside the folder
        return Hint(Path(str(event.dest_path)), complete=True)
    if isinstance(event, FileClosedEvent):  # the writer closed it (inotify IN_CLOSE_WRITE)
        return Hint(Path(str(event.src_path)), complete=True, closed=True)
    if isinstance(event, FileCreatedEvent):  # not proof of anything, but a look soon is cheap
        return Hint(Path(str(event.src_path)), complete=False)
    return None


def start_observer(
    folder: Path, hints: queue.Queue[Hint | None], mode: str, on_hint: Callable[[], None] = lambda: None
) -> BaseObserver:
    """Start watching ``folder``; ``mode`` is auto, inotify or polling; ``on_hint`` is called after each hint.
    Only here do threads start: watchdog's observer constructors start their own."""
    observer = _make_observer(mode)
    # Recursive: files dropped in a provider profile's subfolder are routed to it. Deeper events
    # are only hints too; Intake.relative drops those outside the top and the profile folders.
    observer.schedule(_Handler(hints, on_hint), str(folder), recursive=True, event_filter=WATCHED_EVENTS)
    observer.start()
    return observer


def _make_observer(mode: str) -> BaseObserver:
    if mode == "polling" or (mode == "auto" and not sys.platform.startswith("linux")):
        return PollingObserver(timeout=1.0)
    from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415 - Linux only

    # Full events make a file moved in from another folder a FileMovedEvent, not a creation.
    return InotifyObserver(generate_full_events=True)
