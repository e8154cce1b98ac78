"""Arrivals: inputs claimed and not yet split into parts, and which of them are big.

An input above ``big_input_bytes`` is checked, split and uploaded in a lane of its own (see
daemon/lanes.py). While it is being split (a minute for 2 GB) it is still arriving, but it is no
company for a small input: counting it made every small input dropped meanwhile wait
``pack_wait`` for a batch to share.
"""

from __future__ import annotations

import os

from daemon.config import Settings
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store

ARRIVING = (JobState.CLAIMING, JobState.CLAIMED)  # inputs claimed but not yet split into parts


def input_size(job: Job) -> int:
    """The claimed input's size in bytes; 0 while it is not (or no longer) in our custody."""
    try:
        return os.stat(job.inflight_path).st_size
    except OSError:
        return 0


def is_big(settings: Settings, job: Job) -> bool:
    return input_size(job) > settings.big_input_bytes


def small_arrivals(settings: Settings, store: Store, enough: int) -> int:
    """How many arriving inputs are not big, counted up to ``enough`` (a burst can be thousands)."""
    found = 0
    for state in ARRIVING:
        for job_id in store.job_ids(state):
            if found >= enough:
                return found
            try:
                job = store.job(job_id)
            except KeyError:  # a claim undone since the ids were read
                continue
            found += not is_big(settings, job)
    return found
