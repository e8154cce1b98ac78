"""Finding the batch a lost create reply may have made, with what the service offers.

A service that keeps metadata is searched for the part's batchd pairs, as always. One that drops
metadata (many compatible services accept the field and discard it) is searched by the part's own
input file: batchd uploads a file per part, so a batch made from it since the create was tried is
this part's. A batch that file fed before (one refused for the token limit and recorded in
``old_batch_ids``) is not. A service that cannot list batches cannot be searched at all: the
submitter then holds the part (see ``unconfirmed_reason``) rather than risk paying twice.
"""

from __future__ import annotations

from daemon.service.batch_info import BatchInfo
from daemon.service.batch_service import BatchService
from daemon.state.rows import Job, Part

# Clocks differ between us and the service; a batch this much older than the intent may still be ours.
CLOCK_SKEW = 600.0
UNCONFIRMED_HOLD = 3600.0  # nothing changes on its own: the part is looked at again hourly, with the error logged


def our_batches(remote: BatchService, job: Job, part: Part) -> list[BatchInfo]:
    """The batches the service holds for ``part``'s intent, oldest first (the first is kept)."""
    since = part.intent_at or 0.0
    if remote.profile.supports_metadata:
        return remote.find_batches({"batchd_job": job.id, "batchd_part": part.label}, since)
    earlier = set(filter(None, (part.old_batch_ids or "").split(",")))
    found = [
        batch
        for batch in remote.batches_since(since)
        if batch.input_file_id == part.file_id and batch.id not in earlier and batch.created_at >= since - CLOCK_SKEW
    ]
    return sorted(found, key=lambda b: (b.created_at, b.id))


def unconfirmed_reason(profile: str, part: Part) -> str:
    """What an operator reads (log, ``batchd status``) for a part held by a create of unknown outcome."""
    return (
        f"the reply to creating the batch of part {part.label} was lost, and provider profile {profile!r} "
        "cannot list batches (supports_list = false), so whether the service created it cannot be told; "
        "batchd will not create another, which could be paid twice. Look in the service's console for a "
        f"batch of input file {part.file_id}: its results are there"
    )
