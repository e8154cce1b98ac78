"""Where an input goes when batchd is done with it: uploaded_files/ or failed/, never overwriting."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.fileops import free_name, move_no_clobber, safe_component
from daemon.store import Job, Store


def move_input(store: Store, job: Job, folder: Path) -> Path:
    """Move the job's input into ``folder``; idempotent across crashes (recorded before moving)."""
    if job.final_path and os.path.lexists(job.final_path) and not os.path.lexists(job.inflight_path):
        return Path(job.final_path)  # moved before a crash; only the state update was lost
    dest = free_name(folder, safe_component(job.source_name), job.id)
    store.update_job(job.id, final_path=str(dest))
    job.final_path = str(dest)
    move_no_clobber(Path(job.inflight_path), dest)
    return dest
