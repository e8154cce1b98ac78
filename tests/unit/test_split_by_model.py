"""split_by_model at intake: validation lets several models through (or names the setting), the
splitter gives each model parts of its own and a routes file that puts the input order back."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.intake.anthropic_lines import ANTHROPIC_FORMAT
from daemon.intake.line_formats import format_limits, validate_input
from daemon.intake.preparer import prepare_jobs
from daemon.intake.refitter import Refitter, Verdict
from daemon.intake.routes import ROUTES_NAME, iter_routes
from daemon.intake.splitter import Split, split_lines
from daemon.intake.validation import MAX_MODELS, BatchLimits, ModelShare, validate_file
from daemon.state import folders
from daemon.state.rows import part_model
from daemon.state.states import JobState
from daemon.state.store import Store
from tests.unit.test_preparer import claimed

SPLIT = BatchLimits(split_models=True)


def line(cid: str, model: str, padding: int = 0) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "x" * padding}]}
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})


def claude_line(cid: str, model: str) -> str:
    params = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": cid, "params": params})


def write(tmp_path: Path, lines: list[str]) -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(text + "\n" for text in lines))
    return path


MIXED = [("r0", "a"), ("r1", "b"), ("r2", "a"), ("r3", "c"), ("r4", "b"), ("r5", "a"), ("r6", "a")]


def mixed_lines(padding: int = 0) -> list[str]:
    return [line(cid, model, padding) for cid, model in MIXED]


def test_a_second_model_without_the_setting_is_a_problem_naming_the_setting(tmp_path: Path) -> None:
    findings = validate_file(write(tmp_path, mixed_lines()))
    assert [n for n, _ in findings.problems] == [2, 4, 5]  # each line naming another model than line 1's
    assert "model 'b' differs from 'a' on line 1; one file, one model" in findings.problems[0][1]
    assert "set split_by_model = true to send one batch per model" in findings.problems[0][1]


def test_with_the_setting_several_models_pass_and_each_has_its_share(tmp_path: Path) -> None:
    lines = mixed_lines()
    findings = validate_file(write(tmp_path, lines), SPLIT)
    assert findings.ok and findings.requests == 7 and findings.model == "a"
    assert list(findings.models) == ["a", "b", "c"]  # in order of first use
    tokens = {m: sum(max(1, (len(t) + 1) // 4) for (_, mm), t in zip(MIXED, lines, strict=True) if mm == m)
              for m in "abc"}  # fmt: skip
    assert findings.models == {
        "a": ModelShare(4, tokens["a"]),
        "b": ModelShare(2, tokens["b"]),
        "c": ModelShare(1, tokens["c"]),
    }


def test_one_model_files_fill_their_share_too(tmp_path: Path) -> None:
    findings = validate_file(write(tmp_path, [line("x", "m"), line("y", "m")]))
    assert findings.ok and list(findings.models) == ["m"] and findings.models["m"].requests == 2


def test_more_models_than_the_routes_can_name_is_a_problem_naming_the_line(tmp_path: Path) -> None:
    lines = [line(f"r{n}", f"model-{n}") for n in range(MAX_MODELS + 1)]
    findings = validate_file(write(tmp_path, lines), SPLIT)
    assert findings.problems == [
        (
            MAX_MODELS + 1,
            f"model 'model-{MAX_MODELS}' would be model number {MAX_MODELS + 1} of this file; split_by_model "
            f"takes at most {MAX_MODELS} models per input: split the file by model",
        )
    ]


def test_anthropic_lines_follow_the_setting_the_same_way(tmp_path: Path) -> None:
    lines = [claude_line("a1", "claude-x"), claude_line("b1", "claude-y"), claude_line("a2", "claude-x")]
    path = write(tmp_path, lines)
    off = validate_input(path, format_limits(ANTHROPIC_FORMAT))
    assert [n for n, _ in off.problems] == [2] and "set split_by_model = true" in off.problems[0][1]
    on = validate_input(path, dataclasses.replace(format_limits(ANTHROPIC_FORMAT), split_models=True))
    assert on.ok and {m: s.requests for m, s in on.models.items()} == {"claude-x": 2, "claude-y": 1}


def split(tmp_path: Path, lines: list[str], limits: BatchLimits, hold: int = 0) -> Split:
    with open(write(tmp_path, lines), "rb") as fh:
        result = split_lines(fh, tmp_path / "parts", limits, hold)
    assert result.findings.ok, result.findings.problems
    return result


def ids_by_part(result: Split) -> list[list[str]]:
    return [[json.loads(text)["custom_id"] for text in p.path.read_text().splitlines()] for p in result.parts]


def test_each_model_has_parts_of_its_own_numbered_as_they_start(tmp_path: Path) -> None:
    result = split(tmp_path, mixed_lines(), dataclasses.replace(SPLIT, max_requests=2))
    assert ids_by_part(result) == [["r0", "r2"], ["r1", "r4"], ["r3"], ["r5", "r6"]]
    assert [(p.path.name, p.model, p.first_line) for p in result.parts] == [
        ("0.jsonl", "a", 1),
        ("1.jsonl", "b", 2),
        ("2.jsonl", "c", 4),
        ("3.jsonl", "a", 6),
    ]
    assert [p.request_count for p in result.parts] == [2, 2, 1, 2]
    assert result.held is None


def test_the_routes_file_gives_each_requests_lane_in_input_order(tmp_path: Path) -> None:
    result = split(tmp_path, mixed_lines(), SPLIT, hold=100)  # small enough to hold, were it one model
    assert result.routes == tmp_path / "parts" / ROUTES_NAME
    assert result.routes.read_bytes() == bytes([0, 1, 0, 2, 1, 0, 0])
    assert list(iter_routes(result.routes)) == [0, 1, 0, 2, 1, 0, 0]
    assert result.held is None and all(p.path.exists() for p in result.parts)  # a mixed input is never held


def test_the_first_model_held_so_far_is_written_when_a_second_appears_late(tmp_path: Path) -> None:
    lines = [line(f"a{n}", "a") for n in range(5)] + [line("b0", "b")]
    result = split(tmp_path, lines, SPLIT, hold=100)
    assert result.held is None and ids_by_part(result) == [[f"a{n}" for n in range(5)], ["b0"]]
    assert result.routes is not None and result.routes.read_bytes() == bytes([0, 0, 0, 0, 0, 1])


def test_each_lane_keeps_every_limit_by_itself(tmp_path: Path) -> None:
    lines = mixed_lines(padding=400)
    size = len(lines[0]) + 1  # every line the same size
    limits = dataclasses.replace(SPLIT, max_bytes=3 * size, max_tokens=2 * ((size // 4) + 1))
    result = split(tmp_path, lines, limits)
    assert ids_by_part(result) == [["r0", "r2"], ["r1", "r4"], ["r3"], ["r5", "r6"]]
    for part in result.parts:
        assert part.byte_size <= limits.max_bytes and part.est_tokens <= (limits.max_tokens or 0)
        assert {json.loads(t)["body"]["model"] for t in part.path.read_text().splitlines()} == {part.model}


@pytest.mark.parametrize("hold", [0, 100])
def test_one_model_with_the_setting_is_split_as_without_it(tmp_path: Path, hold: int) -> None:
    lines = [line(f"r{n}", "m", padding=50 * n) for n in range(9)]
    plain = split(tmp_path / "plain", lines, BatchLimits(max_requests=4), hold)
    lanes = split(tmp_path / "lanes", lines, dataclasses.replace(SPLIT, max_requests=4), hold)
    assert lanes.routes is None and not (tmp_path / "lanes" / "parts" / ROUTES_NAME).exists()
    assert lanes.held == plain.held
    assert [(p.path.name, p.first_line, p.request_count, p.byte_size) for p in lanes.parts] == [
        (p.path.name, p.first_line, p.request_count, p.byte_size) for p in plain.parts
    ]
    assert [p.path.read_bytes() for p in lanes.parts if p.path.exists()] == [
        p.path.read_bytes() for p in plain.parts if p.path.exists()
    ]


def test_an_invalid_mixed_input_leaves_no_parts_and_no_routes(tmp_path: Path) -> None:
    path = write(tmp_path, [*mixed_lines(), "{not json"])
    with open(path, "rb") as fh:
        result = split_lines(fh, tmp_path / "parts", SPLIT)
    assert not result.findings.ok and result.parts == [] and result.routes is None
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == []


def test_a_mixed_input_is_recorded_with_a_model_per_part_and_none_for_the_job(
    prepared: tuple[Settings, Store],
) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, split_by_model=True, max_requests_per_batch=2)
    mixed = claimed(settings, store, "mixed.jsonl", "".join(t + "\n" for t in mixed_lines()))
    single = claimed(settings, store, "single.jsonl", "".join(line(f"s{n}", "m") + "\n" for n in range(3)))
    prepare_jobs(settings, store, [mixed, single])
    job = store.job(mixed.id)
    assert (job.state, job.model, job.request_count) == (JobState.ACTIVE, None, 7)
    parts = store.parts(mixed.id)
    assert [(p.segment, p.model, p.first_line, p.request_count) for p in parts] == [
        (0, "a", 1, 2),
        (1, "b", 2, 2),
        (2, "c", 4, 1),
        (3, "a", 6, 2),
    ]
    assert [part_model(p, job) for p in parts] == ["a", "b", "c", "a"]
    assert (settings.state / folders.PARTS / mixed.id / ROUTES_NAME).exists()
    assert store.job(single.id).model == "m" and {p.model for p in store.parts(single.id)} == {None}


def test_a_refitted_part_of_a_mixed_input_keeps_its_model_in_every_piece(prepared: tuple[Settings, Store]) -> None:
    settings, store = prepared
    settings = dataclasses.replace(settings, split_by_model=True)
    mixed = claimed(settings, store, "mixed.jsonl", "".join(t + "\n" for t in mixed_lines(padding=400)))
    prepare_jobs(settings, store, [mixed])
    job, (a_part, b_part, _) = store.job(mixed.id), store.parts(mixed.id)
    assert (b_part.model, b_part.request_count) == ("b", 2)
    each = b_part.est_tokens // 2
    assert Refitter(settings, store).refit(b_part, job, each + 1, reported=True) == Verdict.SPLIT
    pieces = [p for p in store.parts(job.id) if p.segment == b_part.segment and p.attempt > 0]
    assert [(p.model, p.request_count, p.first_line) for p in pieces] == [("b", 1, 2), ("b", 1, 5)]
    alone = dataclasses.replace(store.part(a_part.id), est_tokens=a_part.est_tokens)
    assert Refitter(settings, store).refit(alone, job, 10, reported=True) == Verdict.SPLIT
    refused = [p for p in store.parts(job.id) if p.segment == a_part.segment and p.outcome is not None]
    assert refused and all(p.model == "a" and "for model a" in (p.last_error or "") for p in refused)
