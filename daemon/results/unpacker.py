"""Unpacking: when a pack's batches are done, each member input gets its own lines back.

Every downloaded output and error file of the pack is split by the slot prefix of its custom_ids
into the member's results folder, under the same file name and with the member's own custom_ids,
so each member then merges, summarises and archives exactly like an input that had a batch to
itself. Memory stays bounded: a file is indexed by byte offset per member, then copied member by
member. Member files are written atomically, and only then does one transaction hand the batches
to the members and end the pack, so a crash anywhere means the unpacking simply runs again.

If the service refused the pack (its batch failed validation, or the create was rejected),
nothing ran: the members are sent again one by one, so one bad input cannot sink the others.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import IO

import orjson

from daemon import crashpoints
from daemon.config import Settings
from daemon.intake.custom_ids import NotEditableError, without_prefix
from daemon.intake.line_reader import CEILING, LongLine, is_blank, read_line, read_lines
from daemon.intake.packer import UNMATCHED_NOTE, own_part_file, split_slot
from daemon.intake.quarantine import Quarantine
from daemon.intake.recheck import InputChangedError
from daemon.logs import get_logger
from daemon.service.remote_cleanup import schedule_deletions
from daemon.state.fileops import OWNER_ONLY_DIR, atomic_writer, write_atomic
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartOutcome, PartState
from daemon.state.store import Store

log = get_logger(__name__)


def unpack(settings: Settings, store: Store, pack: Job, parts: list[Part], downloads: list[Path]) -> None:
    """End ``pack``: hand its downloads (oldest batch first) back to its members."""
    members = store.pack_members(pack.id)
    schedule_deletions(settings, store, pack, parts)  # due once the pack has ended, below
    sent = [p for p in sorted(parts, key=lambda p: p.attempt) if p.batch_id or p.batch_status or p.outcome]
    if sent and all(p.refused for p in sent):
        _send_alone(settings, store, pack, members, sent)
        return
    unmatched = sum(_split(path, members, store) for path in downloads)
    if unmatched:  # keep the pack's own files: those lines belong to no member
        _note_unmatched(Path(pack.result_dir or ""), unmatched)
    crashpoints.reach("unpacked")
    _hand_over(store, pack, members, sent)
    crashpoints.reach("handed_over")
    if unmatched:
        log.warning("pack_lines_unmatched", pack_id=pack.id, lines=unmatched, folder=pack.result_dir)
    else:
        shutil.rmtree(pack.result_dir or "", ignore_errors=True)
    log.info("pack_unpacked", pack_id=pack.id, inputs=len(members), batch_id=sent[-1].batch_id if sent else None)


def _split(path: Path, members: list[Part], store: Store) -> int:
    """Copy each member's lines of ``path`` into its results folder; return the lines matching none."""
    by_slot = {m.pack_slot: m for m in members}
    offsets: dict[int, list[int]] = {}
    unmatched = 0
    with open(path, "rb") as fh:
        offset = 0
        for _, raw in read_lines(fh, CEILING):
            slot = None if isinstance(raw, LongLine) else _slot(raw)
            if slot is not None and slot in by_slot:
                offsets.setdefault(slot, []).append(offset)
            else:  # a line too big to parse stays with the pack's own files, like one naming no slot
                unmatched += isinstance(raw, LongLine) or not is_blank(raw)
            offset += raw.size if isinstance(raw, LongLine) else len(raw)
        for slot, starts in offsets.items():
            folder = Path(store.job(by_slot[slot].job_id).result_dir or "")
            folder.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
            _copy_lines(fh, starts, folder / path.name)
    return unmatched


def _note_unmatched(folder: Path, lines: int) -> None:
    """Say why the folder stays (the start-up sweep keeps a folder with this note)."""
    text = (
        f"{lines} line(s) of this shared batch's output or error files named no input's slot, so they\n"
        "were not copied to any input's results. They are kept here; delete the folder when done.\n"
    )
    write_atomic(folder / UNMATCHED_NOTE, text.encode())


def _slot(raw: bytes) -> int | None:
    try:
        found = split_slot(orjson.loads(raw)["custom_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    return found[0] if found else None


def _copy_lines(fh: IO[bytes], starts: list[int], dest: Path) -> None:
    with atomic_writer(dest) as out:
        for start in starts:
            out.write(own_line(read_line(fh, start)))


def own_line(raw: bytes) -> bytes:
    """An output line of a pack with its member's own custom_id: only the slot prefix is taken out
    of the id's bytes, so the service's line is otherwise kept as it came (custom_ids)."""
    line = orjson.loads(raw)
    slotted = split_slot(line["custom_id"])
    assert slotted is not None  # only lines with a member's slot were indexed
    try:
        prefix = line["custom_id"][: len(line["custom_id"]) - len(slotted[1])]  # "<slot>:" or "<slot>-"
        kept = without_prefix(raw.rstrip(b"\r\n"), prefix)
    except (NotEditableError, orjson.JSONDecodeError):
        kept = None
    if kept is not None and orjson.loads(kept).get("custom_id") == slotted[1]:
        return kept + b"\n"
    line["custom_id"] = slotted[1]  # the service escaped the id another way: write the line anew
    return orjson.dumps(line) + b"\n"


def _hand_over(store: Store, pack: Job, members: list[Part], sent: list[Part]) -> None:
    """Members take the pack's batches as their own; the pack ends."""
    last = sent[-1] if sent else None
    earlier = [p.batch_id for p in sent[:-1] if p.batch_id]
    first_submit = min((p.submitted_at for p in sent if p.submitted_at), default=None)
    with store.transaction():
        for member in members:
            store.update_part(
                member.id,
                state=PartState.DOWNLOADED,
                batch_id=last.batch_id if last else None,
                batch_status=last.batch_status if last else None,
                outcome=last.outcome if last else PartOutcome.CANCELLED,
                batch_json=last.batch_json if last else None,
                old_batch_ids=",".join(filter(None, [member.old_batch_ids, *earlier])),
                submitted_at=first_submit,
                last_error=last.last_error if last else None,
            )
        store.update_job(pack.id, state=JobState.DONE, finished_at=time.time())


def _own_part_files(settings: Settings, store: Store, members: list[Part]) -> list[tuple[Part, str]]:
    """Each member's own part file; a held member that changed since it was checked ends instead."""
    placed = []
    for member in members:
        job = store.job(member.job_id)
        try:
            placed.append((member, own_part_file(settings, job, member)))
        except InputChangedError as exc:
            Quarantine(settings, store).end_changed(job, exc)
    return placed


def _send_alone(settings: Settings, store: Store, pack: Job, members: list[Part], sent: list[Part]) -> None:
    """Nothing in the pack ran: each member goes again in a batch of its own, never packed again."""
    refused = ",".join(p.batch_id for p in sent if p.batch_id)
    reason = f"the service refused pack {pack.id}: {sent[-1].last_error or sent[-1].shown_status}"
    # A member that ended while packed (abandoned) stays ended: only packed ones go again.
    placed = _own_part_files(settings, store, [m for m in members if m.state == PartState.PACKED])
    with store.transaction():
        for member, path in placed:
            old_batch_ids = ",".join(filter(None, [member.old_batch_ids, refused]))
            store.unpack_part(member.id, path, old_batch_ids=old_batch_ids, last_error=reason)
        store.update_job(pack.id, state=JobState.FAILED, note=reason, finished_at=time.time())
    log.warning("pack_refused", pack_id=pack.id, inputs=len(members), batch_ids=refused, action="sending one by one")
    shutil.rmtree(pack.result_dir or "", ignore_errors=True)
