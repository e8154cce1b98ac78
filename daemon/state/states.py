"""Job, part and batch states. Dependency-free so every module (and the state file) can use them."""

from enum import StrEnum


class JobState(StrEnum):
    CLAIMING = "claiming"  # row written, rename out of the drop zone not yet confirmed
    CLAIMED = "claimed"  # input moved into state/inflight, not yet validated
    ACTIVE = "active"  # validated and split into parts; parts are being submitted or tracked
    COLLECTING = "collecting"  # every part finished; results are being merged
    DONE = "done"  # results written, input archived in uploaded_files/
    FAILED = "failed"  # the service rejected a batch for good; input in failed/ with a report
    REJECTED = "rejected"  # invalid input; moved to failed/ with a report before any upload


class PartState(StrEnum):
    WAITING = "waiting"  # a small input's only part, waiting a moment to share a batch with others
    PACKED = "packed"  # its requests travel in a pack's shared batch; the pack hands back its results
    READY = "ready"  # part file written, nothing sent yet
    UPLOAD_INTENT = "upload_intent"  # files.create may have been sent; reconcile before retrying
    UPLOADED = "uploaded"  # file_id known
    BATCH_INTENT = "batch_intent"  # batches.create may have been sent; reconcile before retrying
    SUBMITTED = "submitted"  # batch_id known; being polled
    FINISHED = "finished"  # batch reached a terminal status; outputs not yet downloaded
    DOWNLOADED = "downloaded"  # outputs (if any) are on disk in the job's results folder
    SUPERSEDED = "superseded"  # its unfinished requests went into a newer part of the same segment


# jobs.kind: an input the user dropped, or a pack carrying several small inputs in one batch.
INPUT_KIND = "input"
PACK_KIND = "pack"

TERMINAL_JOB_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.REJECTED})
OPEN_JOB_STATES = frozenset(JobState) - TERMINAL_JOB_STATES

# The Batch API's statuses. Anything else the service sends is "unknown" and simply polled again.
TERMINAL_BATCH_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
ACTIVE_BATCH_STATUSES = frozenset({"validating", "in_progress", "finalizing", "cancelling"})

# A batch status batchd records itself: the service no longer knows the batch (service/lost_batches.py).
LOST_STATUS = "lost"
