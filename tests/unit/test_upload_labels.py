"""Telling batchd's batches by their input files' names, where the service drops metadata."""

from __future__ import annotations

from daemon.ops.upload_labels import labelled_by_upload
from daemon.service.batch_info import BatchInfo, FileInfo

JOB = "20261203T051200Z-0123456789ab"


def _batch(batch_id: str, file_id: str | None) -> BatchInfo:
    return BatchInfo(batch_id, "in_progress", 1, input_file_id=file_id)


def test_a_batch_of_our_upload_is_labelled_with_its_job_and_part() -> None:
    files = [FileInfo("file-1", f"batchd-{JOB}-12-3.jsonl", 1)]
    (batch,), unknown = labelled_by_upload([_batch("b1", "file-1")], files)
    assert batch.metadata == {"batchd_job": JOB, "batchd_part": "12.3"} and batch.id == "b1"
    assert unknown == []


def test_a_batch_of_a_file_not_ours_is_never_labelled_and_one_of_a_gone_file_cannot_be_told() -> None:
    files = [FileInfo("file-1", "theirs.jsonl", 1), FileInfo("file-2", f"batchd-{JOB}-0-0.jsonl.bak", 1)]
    batches = [_batch("b1", "file-1"), _batch("b2", "file-2"), _batch("b3", "file-gone"), _batch("b4", None)]
    labelled, unknown = labelled_by_upload(batches, files)
    assert (labelled, [b.id for b in unknown]) == ([], ["b3", "b4"])
