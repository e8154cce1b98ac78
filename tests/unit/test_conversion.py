"""Inputs converted at intake: *.jsonl.gz decompressed (bounded), bare bodies wrapped (opt-in);
what is checked and sent is the converted file, the original is kept."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time
from pathlib import Path

from daemon.config import Settings
from daemon.intake.claim import inflight_name
from daemon.intake.preparer import prepare_jobs
from daemon.providers import parse_profile
from daemon.state import folders
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.support import request_file

BARE = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q%d"}]}\n'


def claimed(settings: Settings, store: Store, name: str, data: bytes, profile: str = "default") -> Job:
    now = time.time()
    job_id = f"job-{len(store.jobs())}"
    inflight = settings.state / folders.INFLIGHT / inflight_name(job_id, name)
    inflight.write_bytes(data)
    job = Job(job_id, name, str(settings.pending / name), str(inflight), JobState.CLAIMED, now, now, profile=profile)
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


def test_split_out_sends_the_good_lines_and_sets_the_bad_ones_apart(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, partial_inputs="split_out")
    good = request_file(3).splitlines()
    chat_without_messages = good[2].replace('"messages"', '"input"')
    text = "\n".join([good[0], "{not json", good[1], good[0], chat_without_messages]) + "\n"
    job = claimed(settings, store, "mixed.jsonl", text.encode())
    prepare_jobs(settings, store, [job])
    done = store.job(job.id)
    assert (done.state, done.request_count) == (JobState.ACTIVE, 2)
    assert [line["custom_id"] for line in sent_lines(store, done)] == ["r0", "r1"]
    bad = settings.failed / "mixed.split-out.jsonl"
    assert bad.read_text().splitlines() == ["{not json", good[0], chat_without_messages]
    report = (settings.failed / "mixed.split-out.jsonl.report.txt").read_text()
    assert "3 line(s) failed the checks and were split out" in report
    assert "line 2: not valid JSON" in report
    assert "line 4: custom_id 'r0' is already used on line 1" in report
    assert "line 5: body.messages is missing; /v1/chat/completions requires it" in report
    assert "batchd retry mixed.split-out.jsonl" in report
    note = json.loads((Path(done.result_dir or "") / "split_out.json").read_text())
    assert (note["lines_split_out"], note["line_numbers"]) == (3, [2, 4, 5])
    assert (settings.uploaded / "originals" / "mixed.jsonl").read_text() == text


def test_split_out_of_an_input_with_no_good_line_rejects_it_whole(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, partial_inputs="split_out")
    job = claimed(settings, store, "allbad.jsonl", b"{not json\n[1]\n")
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    assert (settings.failed / "allbad.jsonl").read_bytes() == b"{not json\n[1]\n"
    assert not (settings.failed / "allbad.split-out.jsonl").exists()


def test_by_default_one_bad_line_rejects_the_whole_input(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "one-bad.jsonl", (request_file(3) + "{not json\n").encode())
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    assert not (settings.failed / "one-bad.split-out.jsonl").exists()


def test_an_original_left_behind_by_a_crash_is_moved_away_at_the_next_look(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    job = claimed(settings, store, "late.jsonl.gz", gzip.compress(request_file(2).encode()))
    converted = Path(job.inflight_path + ".converted.jsonl")
    converted.write_text(request_file(2))
    store.update_job(job.id, inflight_path=str(converted), source_name="late.jsonl")  # recorded, then the crash
    prepare_jobs(settings, store, [store.job(job.id)])
    assert store.job(job.id).state == JobState.ACTIVE
    assert sorted(p.name for p in (settings.state / folders.INFLIGHT).iterdir()) == [converted.name]
    assert (settings.uploaded / "originals" / "late.jsonl.gz").exists()


def test_split_out_of_a_decompressed_input_keeps_only_the_dropped_original(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, partial_inputs="split_out")
    dropped = gzip.compress((request_file(2) + "oops\n").encode())
    job = claimed(settings, store, "both.jsonl.gz", dropped)
    prepare_jobs(settings, store, [job])
    done = store.job(job.id)
    assert (done.state, done.request_count, done.source_name) == (JobState.ACTIVE, 2, "both.jsonl")
    assert [p.name for p in (settings.uploaded / "originals").iterdir()] == ["both.jsonl.gz"]
    assert (settings.failed / "both.split-out.jsonl").read_text() == "oops\n"
    assert [p.name for p in (settings.state / folders.INFLIGHT).iterdir()] == [Path(done.inflight_path).name]


def test_a_profile_may_wrap_bare_bodies_when_the_top_level_does_not(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    profiles = {"wrapping": parse_profile("wrapping", {"wrap_bare_bodies": True})}
    settings = dataclasses.replace(settings, providers={**settings.providers, **profiles})
    data = "".join(BARE % n for n in range(2)).encode()
    top = claimed(settings, store, "top.jsonl", data)
    own = claimed(settings, store, "own.jsonl", data, profile="wrapping")
    prepare_jobs(settings, store, [top, own])
    assert store.job(top.id).state == JobState.REJECTED
    assert (store.job(own.id).state, store.job(own.id).request_count) == (JobState.ACTIVE, 2)


def test_a_json_array_too_big_to_parse_at_intake_is_rejected_with_the_fix(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, wrap_bare_bodies=True, max_line_bytes=1024)
    array = json.dumps([{"model": "m", "input": "x" * 100}] * 20).encode()
    job = claimed(settings, store, "big-array.jsonl", array)
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    report = (settings.failed / "big-array.jsonl.report.txt").read_text()
    assert "one JSON array of more than 1,024 bytes (max_line_bytes)" in report
    assert (settings.failed / "big-array.jsonl").read_bytes() == array
