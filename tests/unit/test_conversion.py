"""Inputs converted at intake: *.jsonl.gz decompressed (bounded), bare bodies wrapped (opt-in);
what is checked and sent is the converted file, the original is kept."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.intake.claim import inflight_name
from daemon.intake.preparer import prepare_jobs
from daemon.state import folders
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.support import request_file

BARE = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q%d"}]}\n'


@pytest.fixture
def prepared(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    settings = Settings(root=tmp_path)
    folders.prepare(settings)
    store = Store(settings.state / folders.DB_NAME)
    yield settings, store
    store.close()


def claimed(settings: Settings, store: Store, name: str, data: bytes) -> Job:
    now = time.time()
    job_id = f"job-{len(store.jobs())}"
    inflight = settings.state / folders.INFLIGHT / inflight_name(job_id, name)
    inflight.write_bytes(data)
    job = Job(job_id, name, str(settings.pending / name), str(inflight), JobState.CLAIMED, now, now)
    store.add_job(job)
    return job


def sent_lines(store: Store, job: Job) -> list[dict[str, object]]:
    (part,) = store.parts(job.id)
    return [json.loads(line) for line in Path(part.path).read_text().splitlines()]


def test_a_gzip_input_is_decompressed_checked_and_its_original_kept(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    text = request_file(3)
    job = claimed(settings, store, "work.JSONL.gz", gzip.compress(text.encode()))
    prepare_jobs(settings, store, [job])
    done = store.job(job.id)
    assert (done.state, done.source_name, done.request_count) == (JobState.ACTIVE, "work.jsonl", 3)
    assert Path(done.inflight_path).read_text() == text
    assert [line["custom_id"] for line in sent_lines(store, done)] == ["r0", "r1", "r2"]
    kept = settings.uploaded / "originals" / "work.JSONL.gz"
    assert gzip.decompress(kept.read_bytes()).decode() == text
    assert sorted(p.name for p in (settings.state / folders.INFLIGHT).iterdir()) == [Path(done.inflight_path).name]


def test_a_gzip_bomb_is_stopped_at_max_decompressed_bytes(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, max_decompressed_bytes=100_000)
    job = claimed(settings, store, "bomb.jsonl.gz", gzip.compress(b"\n" * 10_000_000))
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    report = (settings.failed / "bomb.jsonl.gz.report.txt").read_text()
    assert "more than 100,000 bytes decompressed (max_decompressed_bytes)" in report
    assert (settings.failed / "bomb.jsonl.gz").exists(), "the original is kept, in failed/"
    assert not (settings.state / folders.INFLIGHT).exists() or not any((settings.state / folders.INFLIGHT).iterdir())


def test_a_file_that_is_not_gzip_is_rejected_with_the_reason(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "plain.jsonl.gz", request_file(2).encode())
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    assert "not a valid gzip file" in (settings.failed / "plain.jsonl.gz.report.txt").read_text()


def test_bare_bodies_are_wrapped_at_intake_when_asked(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, wrap_bare_bodies=True)
    original = "".join(BARE % n for n in range(3)).encode()
    job = claimed(settings, store, "blog.jsonl", original)
    prepare_jobs(settings, store, [job])
    done = store.job(job.id)
    assert (done.state, done.source_name, done.endpoint) == (JobState.ACTIVE, "blog.jsonl", "/v1/chat/completions")
    lines = sent_lines(store, done)
    assert [line["custom_id"] for line in lines] == ["line-1", "line-2", "line-3"]
    assert lines[2]["body"] == json.loads(BARE % 2)
    assert (settings.uploaded / "originals" / "blog.jsonl").read_bytes() == original


def test_a_json_array_is_wrapped_with_the_configured_url(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, wrap_bare_bodies=True, wrap_url="/v1/responses")
    array = json.dumps([{"model": "m", "input": "a"}, {"model": "m", "input": "b"}], indent=2).encode()
    job = claimed(settings, store, "array.jsonl", array)
    prepare_jobs(settings, store, [job])
    done = store.job(job.id)
    assert (done.state, done.endpoint, done.request_count) == (JobState.ACTIVE, "/v1/responses", 2)


def test_without_the_setting_bare_bodies_are_rejected_with_both_fixes(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "blog.jsonl", "".join(BARE % n for n in range(250)).encode())
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    report = (settings.failed / "blog.jsonl.report.txt").read_text()
    assert "all 250 lines: this line is a bare request body" in report
    assert report.count("bare request bod") == 2, "one grouped line and one fix, not 250 lines"
    assert "batchd wrap failed/blog.jsonl --url /v1/chat/completions -o failed/blog.jsonl" in report
    assert "wrap_bare_bodies = true" in report
    assert report.rstrip().endswith("run `batchd retry blog.jsonl`; batchd treats it as a new job.")
