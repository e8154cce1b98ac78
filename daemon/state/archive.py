"""Where an input goes when batchd is done with it: uploaded_files/ or failed/, never overwriting."""

from __future__ import annotations

import os
from pathlib import Path

from daemon import crashpoints
from daemon.state.fileops import free_name, fsync_dir, move_no_clobber, safe_component, same_file
from daemon.state.rows import Job
from daemon.state.store import Store


def move_input(store: Store, job: Job, folder: Path) -> Path:
    """Move the job's input into ``folder``; idempotent across crashes (recorded before moving)."""
    if job.final_path and os.path.lexists(job.final_path):
        final, inflight = Path(job.final_path), Path(job.inflight_path)
        if not os.path.lexists(inflight):
            return final  # moved before a crash; only the state update was lost
        if same_file(final, inflight):
            # A crash fell between the link and the unlink of the move: finish it, do not copy again.
            inflight.unlink()
            fsync_dir(inflight.parent)
            return final
    dest = free_name(folder, safe_component(job.source_name), job.id)
    store.update_job(job.id, final_path=str(dest))
    job.final_path = str(dest)
    move_no_clobber(Path(job.inflight_path), dest)
    crashpoints.reach("archived")
    return dest
