"""Bare bodies wrapped at intake whose fields name no url, or different ones: the report names the
setting (wrap_url) as well as `batchd wrap`'s flag, since --url means nothing to the daemon."""

from __future__ import annotations

import dataclasses

from daemon.config import Settings
from daemon.intake.preparer import prepare_jobs
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.unit.test_conversion import claimed

MIXED = '{"model": "text-embedding-3-small", "input": "a"}\n{"model": "gpt-4o-mini", "input": "b"}\n'


def test_bodies_of_two_endpoints_are_rejected_naming_wrap_url(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, wrap_bare_bodies=True)
    job = claimed(settings, store, "mixed.jsonl", MIXED.encode())
    prepare_jobs(settings, store, [job])
    assert store.job(job.id).state == JobState.REJECTED
    report = (settings.failed / "mixed.jsonl.report.txt").read_text()
    assert "line 2 looks like a /v1/responses request" in report
    assert "the setting wrap_url" in report and "batchd wrap FILE --url URL" in report
