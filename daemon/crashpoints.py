"""Named crash points, so tests can prove that a kill at any step loses and repeats nothing.

Inert unless the environment variable ``BATCHD_CRASH_AT`` names a point when the process starts.
Then the process SIGKILLs itself on reaching it: no cleanup, no flush, no finally blocks, exactly
what a power cut or the OOM killer does. Only the crash-matrix tests set it.
"""

from __future__ import annotations

import os
import signal

ENV_NAME = "BATCHD_CRASH_AT"
POINTS = frozenset(
    {
        "claim_linked",  # the input linked into state/inflight/, not yet removed from the drop zone
        "claimed",  # the input moved into state/inflight/, the claim not yet recorded
        "packed",  # a pack's part file written and synced, the pack not yet recorded
        "unpacked",  # a pack's results copied to its members' folders, not yet handed over
        "handed_over",  # a pack's results handed over to its members, its folder not yet removed
        "uploaded",  # files.create returned; the file id not yet recorded
        "batch_created",  # batches.create returned; the batch id not yet recorded
        "polled",  # fresh statuses fetched; not yet recorded
        "downloading",  # part of an output file written to its temp file
        "downloaded",  # an output file complete in its temp file, not yet renamed into place
        "collected",  # a part's outputs recorded as downloaded; its job's merge not yet begun
        "merging",  # results.jsonl half written in its temp file
        "input_linked",  # the input linked into uploaded_files/ (or failed/), the in-flight name not yet removed
        "archived",  # the input moved into uploaded_files/ (or failed/), its job not yet marked ended
    }
)
_armed = os.environ.get(ENV_NAME, "")


def reach(point: str) -> None:
    """Die here if this is the armed point (a no-op in normal runs)."""
    if point == _armed:
        os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # not reached: SIGKILL to oneself is delivered before kill() returns
