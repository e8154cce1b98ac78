"""The inputs people have, end to end through the emulator: the blog's bare bodies (wrapped at
intake), a gzip file, an input with bad lines split out, and a body the service would refuse."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

from daemon.emulator import EmulatorServer
from daemon.state.states import JobState
from tests.support import Harness, request_file

BLOG = "".join(
    json.dumps({"model": "gpt-4-turbo", "messages": [{"role": "user", "content": text}]}, ensure_ascii=False) + "\n"
    for text in ("写一首关于春天的诗", "解释量子力学的基本原理", "写一段关于人工智能的演讲稿")
)


def test_the_blog_lines_run_when_wrap_bare_bodies_is_on(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(wrap_bare_bodies=True).start()
    harness.drop("blog.jsonl", BLOG)
    harness.wait_job("blog.jsonl")
    results = harness.results("blog.jsonl")
    assert [r["custom_id"] for r in results] == ["line-1", "line-2", "line-3"]
    assert all(r["response"]["status_code"] == 200 for r in results)
    assert (harness.settings.uploaded / "originals" / "blog.jsonl").read_text(encoding="utf-8") == BLOG


def test_a_gzip_input_runs_and_an_unaccepted_name_is_left_alone(harness: Harness) -> None:
    harness.drop("packed.JSONL.gz", gzip.compress(request_file(4).encode()))
    harness.drop("requests.json", request_file(1))
    job = harness.wait_job("packed.jsonl")
    assert job.request_count == 4
    assert len(harness.results("packed.jsonl")) == 4
    assert (harness.settings.pending / "requests.json").exists()


def test_split_out_lines_are_named_in_the_summary(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(partial_inputs="split_out").start()
    lines = request_file(3).splitlines()
    harness.drop("mixed.jsonl", "\n".join([lines[0], "oops", lines[1], lines[2]]) + "\n")
    harness.wait_job("mixed.jsonl")
    summary = harness.summary("mixed.jsonl")
    assert [r["custom_id"] for r in harness.results("mixed.jsonl")] == ["r0", "r1", "r2"]
    assert (summary["split_out"]["lines_split_out"], summary["split_out"]["line_numbers"]) == (1, [2])
    assert (harness.settings.failed / "mixed.split-out.jsonl").read_text() == "oops\n"


def test_a_chat_line_without_messages_never_reaches_the_service(harness: Harness, emulator: EmulatorServer) -> None:
    bad = json.dumps({"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}})
    harness.drop("nomsg.jsonl", bad + "\n")
    harness.wait_job("nomsg.jsonl", JobState.REJECTED)
    report = (harness.settings.failed / "nomsg.jsonl.report.txt").read_text()
    assert "line 1: body.messages is missing; /v1/chat/completions requires it" in report
    assert emulator.batches() == []
    assert not Path(harness.settings.results / "nomsg").exists()
