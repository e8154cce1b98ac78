"""Long lines: a line over max_line_bytes is reported with its true size without being held; one
within it is checked, fingerprinted, merged and unpacked like any other."""

from __future__ import annotations

import hashlib
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError
from daemon.intake.line_reader import CHUNK, LongLine, read_lines
from daemon.intake.preparer import prepare_jobs
from daemon.intake.reports import report_path
from daemon.intake.splitter import split_lines
from daemon.intake.validation import BatchLimits, HashingReader, validate_file
from daemon.results.merger import Segment, merge
from daemon.results.unpacker import unpack
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import PACK_KIND, JobState, PartState
from daemon.state.store import Store

SMALL = (
    '{"custom_id": "s", "method": "POST", "url": "/v1/chat/completions", '
    '"body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}'
)


def request(length: int, custom_id: str = "big") -> bytes:
    """A valid request line of exactly ``length`` bytes (line ending not counted)."""
    head = (
        f'{{"custom_id": "{custom_id}", "method": "POST", "url": "/v1/chat/completions", "body": {{"model": "m", '
        '"messages": [{"role": "user", "content": "hi"}], "x": "'
    )
    tail = '"}}'
    return (head + "a" * (length - len(head) - len(tail)) + tail).encode()


def problems(tmp_path: Path, content: bytes, max_line_bytes: int) -> list[tuple[int, str]]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    return validate_file(path, BatchLimits(max_line_bytes=max_line_bytes)).problems


def test_a_line_just_over_the_limit_is_rejected_with_its_true_size(tmp_path: Path) -> None:
    found = problems(tmp_path, SMALL.encode() + b"\n" + request(1001) + b"\n", 1000)
    assert len(found) == 1
    line_no, message = found[0]
    assert line_no == 2
    assert message.startswith("line is 1,001 bytes, over the 1,000-byte line limit")
    assert "max_line_bytes" in message


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_a_line_at_the_limit_passes_whatever_its_ending(tmp_path: Path, ending: bytes) -> None:
    assert problems(tmp_path, SMALL.encode() + b"\n" + request(1000) + ending, 1000) == []


def test_a_line_longer_than_a_chunk_and_over_the_limit_gets_its_true_size_without_a_newline(tmp_path: Path) -> None:
    length = 3 * CHUNK + 12345
    found = problems(tmp_path, request(length), 2 * CHUNK)
    assert found == [(1, found[0][1])]
    assert found[0][1].startswith(f"line is {length:,} bytes, over the {2 * CHUNK:,}-byte line limit")


def test_a_line_longer_than_a_chunk_within_the_limit_passes_without_a_newline(tmp_path: Path) -> None:
    content = SMALL.encode() + b"\r\n" + request(2 * CHUNK + 7)
    assert problems(tmp_path, content, 2 * CHUNK + 7) == []
    assert problems(tmp_path, content, 2 * CHUNK + 6)[0][1].startswith(f"line is {2 * CHUNK + 7:,} bytes")


def test_a_line_over_the_limit_is_never_held(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(request(16 * CHUNK) + b"\n" + SMALL.encode() + b"\n")
    tracemalloc.start()
    try:
        findings = validate_file(path, BatchLimits(max_line_bytes=64 << 10))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert findings.problems[0][1].startswith(f"line is {16 * CHUNK:,} bytes")
    assert peak < 3 * CHUNK, f"validation held {peak:,} bytes for a line it rejects"


def test_reading_gives_each_line_its_size_and_offsets_add_up(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [b"a\n", b"x" * (2 * CHUNK) + b"\r\n", b"b\n", b"y" * (CHUNK + 5)]
    path.write_bytes(b"".join(lines))
    with open(path, "rb") as fh:
        found = list(read_lines(fh, CHUNK))
    assert found == [
        (1, b"a\n"),
        (2, LongLine(2 * CHUNK + 2, 2 * CHUNK)),
        (3, b"b\n"),
        (4, LongLine(CHUNK + 5, CHUNK + 5)),
    ]
    with open(path, "rb") as fh:
        assert [raw for _, raw in read_lines(fh, 3 * CHUNK)] == lines, "a long line within the limit is read whole"


def test_a_long_line_is_fingerprinted_once_and_split_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    big = request(2 * CHUNK + 3)
    path.write_bytes(SMALL.encode() + b"\r\n" + big + b"\r\n" + SMALL.replace('"s"', '"t"').encode())
    with open(path, "rb") as fh:
        reader = HashingReader(fh)
        split = split_lines(reader, tmp_path / "parts", BatchLimits(max_line_bytes=3 * CHUNK))
    assert split.findings.ok, split.findings.problems
    data = path.read_bytes()
    assert (reader.hexdigest(), reader.size) == (hashlib.sha256(data).hexdigest(), len(data))
    (part,) = split.parts
    assert part.path.read_bytes() == data.replace(b"\r\n", b"\n") + b"\n"


def test_the_failed_report_names_the_line_its_true_size_and_the_key(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, max_line_bytes=4096)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        now = time.time()
        inflight = settings.state / folders.INFLIGHT / "job-a.jsonl"
        inflight.write_bytes(SMALL.encode() + b"\n" + request(CHUNK + 10))
        job = Job("job-a", "a.jsonl", str(settings.pending / "a.jsonl"), str(inflight), JobState.CLAIMED, now, now)
        store.add_job(job)
        prepare_jobs(settings, store, [job])
        assert store.job(job.id).state == JobState.REJECTED
    finally:
        store.close()
    report = report_path(settings.failed / "a.jsonl").read_text()
    assert f"line 2: line is {CHUNK + 10:,} bytes, over the 4,096-byte line limit" in report
    assert "max_line_bytes" in report


@pytest.mark.parametrize("value", [1023, 200_000_001])
def test_max_line_bytes_out_of_range_is_refused_with_what_to_change(value: int) -> None:
    with pytest.raises(ConfigError, match="max_line_bytes must be between 1024 and"):
        load_settings(environ={"BATCHD_MAX_LINE_BYTES": str(value)})


def result_line(custom_id: str, size: int) -> bytes:
    body = {"b64_json": "z" * size}
    line = {"id": "batch_req_1", "custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}
    return json.dumps(line).encode()


def test_a_result_line_longer_than_a_chunk_is_merged_whole(tmp_path: Path) -> None:
    part = tmp_path / "0.jsonl"
    part.write_bytes(SMALL.replace('"s"', '"r0"').encode() + b"\n" + SMALL.replace('"s"', '"r1"').encode() + b"\n")
    output = tmp_path / "out.jsonl"
    big = result_line("r1", 3 * CHUNK)
    output.write_bytes(result_line("r0", 10) + b"\n" + big)  # the last line without its newline
    dest = tmp_path / "results.jsonl"
    assert merge([Segment(part, [output], "completed", 2)], dest) == {"succeeded": 2}
    assert dest.read_bytes() == result_line("r0", 10) + b"\n" + big + b"\n"


def test_a_pack_result_line_longer_than_a_chunk_goes_to_its_member(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    try:
        now = time.time()
        pack = Job("pack-1", "pack", "", "", JobState.COLLECTING, now, now, kind=PACK_KIND, request_count=1)
        member = Job("in-1", "a.jsonl", "", "", JobState.ACTIVE, now, now, request_count=1)
        store.add_job(pack)
        store.add_job(member)
        store.add_part(Part(pack.id, 0, 0, "p", 1, 1, 10, 3, PartState.SUBMITTED, now, now, batch_id="batch_x"))
        store.add_part(Part(member.id, 0, 0, "m", 1, 1, 5, 1, PartState.PACKED, now, now, pack_id=pack.id, pack_slot=0))
        folder = settings.state / "packs" / pack.id
        folder.mkdir(parents=True)
        store.update_job(pack.id, result_dir=str(folder))
        store.update_job(member.id, result_dir=str(settings.results / "a"))
        store.update_part(store.parts(pack.id)[0].id, state=PartState.DOWNLOADED, batch_status="completed")
        output = folder / "batch_x_output.jsonl"
        output.write_bytes(result_line("0:r0", 3 * CHUNK) + b"\n")
        unpack(settings, store, store.job(pack.id), store.parts(pack.id), [output])
        assert store.job(pack.id).state == JobState.DONE
    finally:
        store.close()
    assert (settings.results / "a" / "batch_x_output.jsonl").read_bytes() == result_line("r0", 3 * CHUNK) + b"\n"
