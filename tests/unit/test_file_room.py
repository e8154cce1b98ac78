"""A profile's max_files, counted from the state: which input files the service still holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from structlog.testing import capture_logs

from daemon.providers import KIND_DEFAULTS
from daemon.service.file_room import REASON_PREFIX, FileRoom
from daemon.state.folders import DB_NAME
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store

AZURE = dataclasses.replace(KIND_DEFAULTS["azure"], name="azure", max_files=3)


def _part(store: Store, job_id: str, segment: int, state: PartState, file_id: str | None = None) -> Part:
    part = Part(job_id, segment, 0, f"p{segment}", 1, 1, 10, 3, state, 0.0, 0.0, file_id=file_id)
    return store.add_part(part)


def test_uploads_not_deleted_and_uploads_under_way_are_counted_per_profile(tmp_path: Path) -> None:
    store = Store(tmp_path / DB_NAME)
    try:
        store.add_job(Job("a1", "a.jsonl", "a", "a", JobState.ACTIVE, 0.0, 0.0, profile="azure"))
        store.add_job(Job("o1", "o.jsonl", "o", "o", JobState.ACTIVE, 0.0, 0.0))  # the default profile's
        _part(store, "a1", 0, PartState.SUBMITTED, "file-1")
        _part(store, "a1", 1, PartState.PACKED, "file-1")  # one file, however many rows carry it
        _part(store, "a1", 2, PartState.UPLOAD_INTENT)  # on its way up: it takes a place
        waiting = _part(store, "a1", 3, PartState.READY)
        _part(store, "o1", 0, PartState.SUBMITTED, "file-9")
        assert store.held_input_files("azure") == 2 and store.held_input_files("default") == 1
        room = FileRoom(store)
        assert room.wait(waiting, AZURE) == 0.0
        _part(store, "a1", 4, PartState.SUBMITTED, "file-2")
        with capture_logs() as captured:
            assert room.wait(waiting, AZURE) > 0
            assert room.wait(store.part(waiting.id), AZURE) > 0  # reported once, not at every check
            assert not room.reserve(store.part(waiting.id), AZURE, 5.0)
        assert [e["event"] for e in captured] == ["upload_held_for_file_room"]
        assert (store.part(waiting.id).last_error or "").startswith(REASON_PREFIX)
        store.update_part(waiting.id, next_action_at=300.0)  # as the submitter holds it
        store.add_remote_files("a1", [("file-1", "input")], 1.0)
        store.update_remote_file("file-1", state="deleted")
        assert room.free("azure", 2.0) == 1  # the waiting part is due now
        assert store.part(waiting.id).next_action_at == 2.0
        assert room.reserve(store.part(waiting.id), AZURE, 3.0)
        assert store.part(waiting.id).state == PartState.UPLOAD_INTENT and store.part(waiting.id).last_error is None
    finally:
        store.close()
