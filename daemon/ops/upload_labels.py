"""Telling batchd's batches on a service that drops their metadata, by the names of their input files.

Some compatible services accept a batch's metadata and discard it, so a listed batch says nothing of
the job it serves. batchd names every upload ``batchd-JOB-SEG-ATT.jsonl`` (rows.Part.upload_name), so
where the service lists its files, a batch made from one of ours is labelled with the job and part
its metadata would have named, and `batchd recover` rebuilds it as it rebuilds any other. A batch
whose input file is listed under another name is not ours and is never adopted; one whose input file
is not listed at all (deleted, or older than the horizon) cannot be told, so no input of that profile
claimed before that batch was made counts as never sent.
"""

from __future__ import annotations

import dataclasses
import re

from daemon.service.batch_info import BatchInfo, FileInfo

UPLOAD_NAME = re.compile(r"batchd-(.+)-(\d+)-(\d+)\.jsonl")  # job ids hold a "-" themselves


def labelled_by_upload(batches: list[BatchInfo], files: list[FileInfo]) -> tuple[list[BatchInfo], list[BatchInfo]]:
    """The batches made from one of our uploads, labelled as batchd's metadata would label them;
    and those whose input file is not among ``files`` (whose they are cannot be told)."""
    names = {f.id: f.filename for f in files}
    labelled: list[BatchInfo] = []
    unknown: list[BatchInfo] = []
    for batch in batches:
        name = names.get(batch.input_file_id or "")
        if name is None:
            unknown.append(batch)
            continue
        found = UPLOAD_NAME.fullmatch(name)
        if found is not None:
            label = {"batchd_job": found[1], "batchd_part": f"{int(found[2])}.{int(found[3])}"}
            labelled.append(dataclasses.replace(batch, metadata=label))
    return labelled, unknown
