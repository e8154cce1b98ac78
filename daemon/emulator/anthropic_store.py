"""Thread-safe registry of Message Batches, with their lifecycle computed lazily from timestamps.

A batch is `in_progress` from creation; its requests finish at an even pace over
`in_progress_seconds`, and it `ended` when all have (counts and `results_url` appear only then,
as on the real service). A batch still running at `expires_at` (created + `expiry_seconds`) ends
there, with the requests that had not run `expired`. A cancel moves it to `canceling` for
`cancelling_seconds`; it then ends with the requests that had not run `canceled`. Results can be
downloaded for 29 days after creation; then `archived_at` is set and they answer 404. A batch the
mishaps call endless stalls half-way and ignores expiry until it is cancelled; one that vanished
answers 404 and is left out of listings. With `keep_state` the batches are written to the data
folder on every change (anthropic_snapshot.py) and a restarted emulator goes on with them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from daemon.emulator import anthropic_snapshot
from daemon.emulator.anthropic_records import MessageBatchRecord
from daemon.emulator.anthropic_requests import write_requests
from daemon.emulator.anthropic_results import write_results
from daemon.emulator.creation_limit import CreationLimit
from daemon.emulator.errors import ApiError, bad_request, not_found
from daemon.emulator.ids import new_id
from daemon.emulator.mishaps import Mishaps
from daemon.emulator.settings import EmulatorSettings

# How long after its creation a batch's results can be downloaded (Anthropic: 29 days).
RESULTS_RETENTION = 29 * 86_400.0


class AnthropicStore:
    def __init__(self, settings: EmulatorSettings, root: Path, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._root = root
        self._clock = clock
        self._lock = threading.RLock()
        self.mishaps = Mishaps()
        self._batches: dict[str, MessageBatchRecord] = {}
        self._seq = itertools.count(1)
        self._creations = CreationLimit(settings.create_limit, settings.create_window)
        if settings.keep_state:
            self._restore()

    def _restore(self) -> None:
        for batch in anthropic_snapshot.load(self._root):
            self._batches[batch.id] = batch
        self._seq = itertools.count(max((b.seq for b in self._batches.values()), default=0) + 1)

    def _persist(self) -> None:
        if self._settings.keep_state:
            anthropic_snapshot.save(self._root, list(self._batches.values()))

    # Creation

    def staging_path(self) -> Path:
        return self._root / f"requests-{new_id('')}.jsonl"

    def check_rate(self) -> None:
        """The creation limit's 429, before a create's body is read (a rate limit comes first)."""
        with self._lock:
            self._creations.check(self._clock())

    def create(self, items: Iterable[Any], staged: Path, root_url: str) -> dict[str, Any]:
        """Check and store the requests (raising the create call's 400), then admit the batch.

        Like every method that answers with batches, it returns their JSON, made under the lock so
        a batch ending on another thread never shows half changed; `root_url` is for `results_url`.
        """
        settings = self._settings
        plan = write_requests(items, staged, settings.seed, settings.request_error_rate)
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._creations.admit(now)
            batch = MessageBatchRecord(new_id("msgbatch_"), next(self._seq), now, now + settings.expiry_seconds, plan)
            self._batches[batch.id] = batch
            self.mishaps.created(batch.id)
            if not self._advance(now):  # a zero processing time ends at once
                self._persist()
            return batch.to_json(root_url)

    # Reads and changes

    def batch(self, batch_id: str, root_url: str) -> dict[str, Any]:
        with self._lock:
            self._advance(self._clock())
            return self._known(batch_id).to_json(root_url)

    def page(
        self, limit: int, before_id: str | None, after_id: str | None, root_url: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the listing (newest first) and whether more lie beyond it in that direction."""
        with self._lock:
            self._advance(self._clock())
            rows = [b for b in reversed(self._batches.values()) if not self.mishaps.vanished(b.id)]
            if after_id is not None:
                start = self._position(rows, after_id, "after_id") + 1
                page, has_more = rows[start : start + limit], len(rows) > start + limit
            elif before_id is not None:
                end = self._position(rows, before_id, "before_id")
                page, has_more = rows[max(0, end - limit) : end], end - limit > 0
            else:
                page, has_more = rows[:limit], len(rows) > limit
            return [batch.to_json(root_url) for batch in page], has_more

    @staticmethod
    def _position(rows: list[MessageBatchRecord], batch_id: str, name: str) -> int:
        for position, batch in enumerate(rows):
            if batch.id == batch_id:
                return position
        raise bad_request(f"{name}: no message batch with id '{batch_id}'.")

    def cancel(self, batch_id: str, root_url: str) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            self._advance(now)
            batch = self._known(batch_id)
            if batch.status == "ended":
                raise bad_request(f"Message batch {batch_id} has already ended and cannot be canceled.")
            if batch.status == "in_progress":
                batch.processed_at_cancel = self._processed(batch, now)
                batch.status = "canceling"
                batch.cancel_initiated = now
                if not self._advance(now):  # a zero canceling time ends at once
                    self._persist()
            return batch.to_json(root_url)

    def delete(self, batch_id: str) -> None:
        with self._lock:
            self._advance(self._clock())
            batch = self._known(batch_id)
            if batch.status != "ended":
                message = f"Message batch {batch_id} cannot be deleted while it is processing; cancel it first."
                raise bad_request(message)
            del self._batches[batch_id]
            self._persist()
            for path in (batch.results_path, batch.plan.input_path):
                if path is not None:
                    path.unlink(missing_ok=True)

    def open_results(self, batch_id: str) -> tuple[BinaryIO, int]:
        """An open handle on the results and their size; the caller streams and closes it."""
        with self._lock:
            self._advance(self._clock())
            batch = self._known(batch_id)
            if batch.results_path is None:
                raise not_found(f"Message batch {batch_id} has not ended yet; its results are not available.")
            if batch.archived is not None:
                raise not_found(f"The results of message batch {batch_id} were archived and are no longer available.")
            return batch.results_path.open("rb"), batch.results_path.stat().st_size

    def batches(self) -> list[MessageBatchRecord]:
        """Every batch the service knows (vanished ones too), oldest first: for assertions."""
        with self._lock:
            self._advance(self._clock())
            return list(self._batches.values())

    def snapshots(self, root_url: str) -> list[dict[str, Any]]:
        """The JSON of every batch (vanished ones too), oldest first: for assertions."""
        with self._lock:
            self._advance(self._clock())
            return [batch.to_json(root_url) for batch in self._batches.values()]

    def _known(self, batch_id: str) -> MessageBatchRecord:
        batch = self._batches.get(batch_id)
        if batch is None or self.mishaps.vanished(batch_id):
            raise ApiError(404, f"No message batch found with id '{batch_id}'.")
        return batch

    # Lifecycle

    def _advance(self, now: float) -> bool:
        """Move every batch on to ``now``; whether any changed (then the kept state was written)."""
        moved = False
        for batch in self._batches.values():
            moment = self._end_time(batch)
            if moment is not None and moment <= now:
                self._end(batch, moment)
                moved = True
            if batch.status == "ended" and batch.archived is None and batch.created + RESULTS_RETENTION <= now:
                self._archive(batch)
                moved = True
        if moved:
            self._persist()
        return moved

    @staticmethod
    def _archive(batch: MessageBatchRecord) -> None:
        """Results are kept 29 days after creation; then the batch shows `archived_at` and they are gone."""
        batch.archived = batch.created + RESULTS_RETENTION
        if batch.results_path is not None:
            batch.results_path.unlink(missing_ok=True)

    def _end_time(self, batch: MessageBatchRecord) -> float | None:
        settings = self._settings
        if batch.status == "canceling":
            assert batch.cancel_initiated is not None  # set with the status
            return batch.cancel_initiated + settings.cancelling_seconds
        if batch.status != "in_progress" or self.mishaps.endless(batch.id):
            return None
        if batch.plan.target < batch.size:
            return batch.expires  # stalls half-way until the window closes
        return min(batch.created + settings.in_progress_seconds, batch.expires)

    def _processed(self, batch: MessageBatchRecord, now: float) -> int:
        """Requests run after `now - created` seconds: grows linearly up to the plan's target."""
        target = self._target(batch)
        duration = self._settings.in_progress_seconds
        elapsed = now - batch.created
        # The epsilons absorb float noise in large unix timestamps (0.3 s must not read as 0.2999).
        if duration <= 0 or elapsed >= duration - 1e-6:
            return target
        return min(target, int(target * elapsed / duration + 1e-6))

    def _target(self, batch: MessageBatchRecord) -> int:
        return batch.size // 2 if self.mishaps.endless(batch.id) else batch.plan.target

    def _end(self, batch: MessageBatchRecord, moment: float) -> None:
        if batch.status == "canceling":
            finished, cutoff = batch.processed_at_cancel or 0, "canceled"
        else:
            finished, cutoff = self._processed(batch, moment), "expired"
        batch.results_path = self._root / f"{batch.id}-results.jsonl"
        batch.counts = write_results(batch.plan, finished, cutoff, self._settings.seed, batch.results_path)
        batch.status = "ended"
        batch.ended = moment
