"""Which lane (see daemon/lanes.py) each step of a pass goes to.

Preparation: small claimed inputs go in chunks (one commit per chunk, not one per small file) to
the SUBMIT lane; each input above ``big_input_bytes`` goes alone to the BIG lane. Submission: the
parts of a big input, or any part above that size, are uploaded in the BIG lane, the rest in SUBMIT.
"""

from __future__ import annotations

from collections.abc import Iterator

from daemon.config import Settings
from daemon.intake.arrivals import is_big
from daemon.lanes import Lane
from daemon.state.states import PartState
from daemon.state.store import Store


class LaneRouter:
    def __init__(self, settings: Settings, store: Store, chunk: int) -> None:
        self.settings = settings
        self.store = store
        self.chunk = chunk

    def preparation(self, job_ids: list[str]) -> Iterator[tuple[Lane, list[str]]]:
        """The claimed jobs as preparation tasks, each with its lane; a chunk goes as soon as it
        is full, so a burst of a thousand small files does not wait for all of them to be looked at."""
        small: list[str] = []
        for job_id in job_ids:
            if is_big(self.settings, self.store.job(job_id)):
                yield Lane.BIG, [job_id]
                continue
            small.append(job_id)
            if len(small) == self.chunk:
                yield Lane.SUBMIT, small
                small = []
        if small:
            yield Lane.SUBMIT, small

    def submission(self, states: tuple[PartState, ...], now: float) -> Iterator[tuple[Lane, int]]:
        """The parts due to be submitted, oldest first, each with its lane."""
        for part_id, big in self.store.due_part_ids_sized(states, now, self.settings.big_input_bytes):
            yield (Lane.BIG if big else Lane.SUBMIT), part_id
