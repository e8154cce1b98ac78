"""summary.json's batch entries name the model each batch ran: a part's own for an input split by
model (split_by_model), else the job's, so a reader can tell which batch holds which model's requests."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from daemon.pricing import DEFAULT_PRICES
from daemon.results.summary import build_summary
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState


def _part(segment: int, first_line: int, model: str | None) -> Part:
    return Part("job-1", segment, 0, "p", first_line, 2, 10, 3, PartState.FINISHED, 0.0, 0.0, model=model)


def _batches(tmp_path: Path, job_model: str | None, parts: list[Part]) -> list[dict[str, object]]:
    job = Job("job-1", "in.jsonl", "in.jsonl", "in.jsonl", JobState.DONE, 0.0, 0.0, model=job_model)
    results = tmp_path / "results.jsonl"
    results.write_text("")
    entries: list[dict[str, object]] = build_summary(job, parts, Counter(), 1.0, results, DEFAULT_PRICES)["batches"]
    return entries


def test_each_batch_of_an_input_split_by_model_names_its_model(tmp_path: Path) -> None:
    entries = _batches(tmp_path, None, [_part(0, 1, "gpt-4o-mini"), _part(1, 2, "gpt-4o")])
    assert [(e["first_line"], e["model"]) for e in entries] == [(1, "gpt-4o-mini"), (2, "gpt-4o")]


def test_the_batches_of_an_input_of_one_model_name_the_jobs(tmp_path: Path) -> None:
    entries = _batches(tmp_path, "gpt-4o-mini", [_part(0, 1, None), _part(1, 3, None)])
    assert [e["model"] for e in entries] == ["gpt-4o-mini", "gpt-4o-mini"]
