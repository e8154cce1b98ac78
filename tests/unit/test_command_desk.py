"""The daemon's desk for commands: requests entered once each, a bounded number per pass, old
outcomes nobody came for cleared, a handler's refusal, failure or crash recorded as such."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import TransientError
from daemon.ops.command_desk import CLAIMS_PER_PASS, CommandDesk, CommandRefusedError
from daemon.ops.command_queue import command_outcome, request_command, spool_folder
from daemon.state.command_queries import DONE, FAILED, REFUSED, Command
from daemon.state.store import Store


@pytest.fixture(name="store")
def store_fixture(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "state.sqlite3")
    yield store
    store.close()


def _refuse(command: Command) -> str:
    raise CommandRefusedError(f"no open job for {command.target!r}")


def _time_out(_: Command) -> str:
    raise TransientError("the service did not answer")


def _crash(_: Command) -> str:
    raise ZeroDivisionError


HANDLERS = {
    "cancel": lambda c: f"{c.target}: cancelled",
    "abandon": _refuse,
    "retry": _time_out,
    "retry_failed": _crash,
}


def _desk(tmp_path: Path, store: Store, rung: list[int]) -> CommandDesk:
    desk = CommandDesk(tmp_path, store, HANDLERS, threading.Event())
    desk.open("polling", lambda: rung.append(1))
    return desk


def test_each_outcome_is_recorded_as_what_it_was(tmp_path: Path, store: Store) -> None:
    desk = _desk(tmp_path, store, [])
    try:
        ids = {kind: request_command(tmp_path, kind, "a.jsonl", "alice") for kind in HANDLERS}
        for command in desk.claim():
            desk.carry_out(command)
        outcomes = {kind: command_outcome(tmp_path, i) for kind, i in ids.items()}
    finally:
        desk.close()
    assert {k: (o.state if o else None) for k, o in outcomes.items()} == {
        "cancel": DONE,
        "abandon": REFUSED,
        "retry": FAILED,
        "retry_failed": FAILED,
    }
    assert outcomes["cancel"] is not None and outcomes["cancel"].result == "a.jsonl: cancelled"
    assert outcomes["retry_failed"] is not None and "internal error (ZeroDivisionError)" in str(
        outcomes["retry_failed"].result
    )
    assert store.requested_commands() == []


def test_a_bounded_number_is_entered_per_pass_and_the_rest_rings_for_the_next(tmp_path: Path, store: Store) -> None:
    rung: list[int] = []
    desk = _desk(tmp_path, store, rung)
    try:
        for n in range(CLAIMS_PER_PASS + 1):
            request_command(tmp_path, "cancel", f"{n}.jsonl", "alice")
        rung.clear()  # the watcher's own rings
        assert len(desk.claim()) == CLAIMS_PER_PASS
        assert rung, "the last one is taken at once, by another pass"
        assert len(desk.claim()) == CLAIMS_PER_PASS + 1
        assert len(desk.claim()) == CLAIMS_PER_PASS + 1, "each request entered once"
    finally:
        desk.close()


def test_outcomes_nobody_came_for_are_cleared_after_a_day(tmp_path: Path, store: Store) -> None:
    spool_folder(tmp_path).mkdir()
    old, new = spool_folder(tmp_path) / "old.outcome.json", spool_folder(tmp_path) / "new.outcome.json"
    for path in (old, new):
        path.write_text("{}")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    desk = _desk(tmp_path, store, [])
    try:
        desk.claim()
    finally:
        desk.close()
    assert not old.exists() and new.exists()
