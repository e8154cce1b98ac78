"""Results of an input split by model: each model's segments merged apart, interleaved back into
input order by the routes file, and each model's usage and cost in the summary."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from daemon.intake.splitter import Split, split_lines
from daemon.intake.validation import BatchLimits
from daemon.pricing import ModelPrice
from daemon.results.interleaver import LaneMerge, merge_lanes
from daemon.results.merger import Segment
from daemon.results.summary import build_summary
from daemon.state.rows import Job
from daemon.state.states import JobState

# custom_id, model: a, b, a, c, b, a, a; with two requests a part, a has two segments.
MIXED = [("r0", "a"), ("r1", "b"), ("r2", "a"), ("r3", "c"), ("r4", "b"), ("r5", "a"), ("r6", "a")]
TOKENS = {"a": (10, 1), "b": (100, 10), "c": (1000, 100)}  # each model's usage per request
PRICES = {"a": ModelPrice(1.0, 2.0), "b": ModelPrice(3.0, 4.0), "c": ModelPrice(5.0, 6.0)}


def request(cid: str, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": cid}]}
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body}) + "\n"


def result(cid: str, model: str) -> str:
    prompt, completion = TOKENS[model]
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    body = {"model": model, "choices": [], "usage": usage}
    return json.dumps({"custom_id": cid, "response": {"status_code": 200, "body": body}, "error": None}) + "\n"


def split_input(tmp_path: Path) -> Split:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(request(cid, model) for cid, model in MIXED))
    with open(source, "rb") as fh:
        split = split_lines(fh, tmp_path / "parts", BatchLimits(max_requests=2, split_models=True))
    assert split.findings.ok and [p.model for p in split.parts] == ["a", "b", "c", "a"]
    return split


def segments_of(tmp_path: Path, split: Split) -> list[Segment]:
    """Each part's results as the service returns them: in another order than sent; the last a
    segment whose first batch expired after running r6 only, r5 then run by its resubmission."""
    segments = []
    for n, part in enumerate(split.parts):
        ids = [json.loads(text)["custom_id"] for text in part.path.read_text().splitlines()]
        downloads = [tmp_path / f"{n}_output.jsonl"]
        if n == 3:
            downloads.append(tmp_path / f"{n}_resubmitted_output.jsonl")
            downloads[0].write_text(result("r6", "a"))
            downloads[1].write_text(result("r5", "a"))
        else:
            downloads[0].write_text("".join(result(cid, part.model or "") for cid in reversed(ids)))
        segments.append(Segment(part.path, downloads, last_status="completed", model=part.model))
    return segments


def merged(tmp_path: Path, routes: Path | None = None) -> tuple[LaneMerge, list[dict[str, object]]]:
    split = split_input(tmp_path)
    dest = tmp_path / "results.jsonl"
    lanes = merge_lanes(segments_of(tmp_path, split), tmp_path / "parts", dest, routes or split.routes, False)
    return lanes, [json.loads(text) for text in dest.read_text().splitlines()]


def test_results_come_back_in_input_order_across_models_and_segments(tmp_path: Path) -> None:
    lanes, lines = merged(tmp_path)
    assert lanes.out_of_order is None
    assert [(line["custom_id"], line["response"]["body"]["model"]) for line in lines] == MIXED  # type: ignore[index]
    assert lanes.counts == Counter(succeeded=7)
    assert {model: lane.requests for model, lane in lanes.lanes.items()} == {"a": 4, "b": 2, "c": 1}
    assert [len(lane.files) for lane in lanes.lanes.values()] == [2, 1, 1]


def test_without_the_routes_file_the_segments_follow_one_another_and_it_says_so(tmp_path: Path) -> None:
    lanes, lines = merged(tmp_path, routes=tmp_path / "parts" / "gone")
    assert lanes.out_of_order is not None and "routes file" in lanes.out_of_order and "gone" in lanes.out_of_order
    assert [line["custom_id"] for line in lines] == ["r0", "r2", "r1", "r4", "r3", "r5", "r6"]  # segment order


@pytest.mark.parametrize("damage", [b"\x00", b"\x07"])
def test_a_routes_file_that_does_not_add_up_is_not_followed(tmp_path: Path, damage: bytes) -> None:
    split = split_input(tmp_path)
    assert split.routes is not None
    split.routes.write_bytes(split.routes.read_bytes() + damage)  # one request more than the parts hold
    dest = tmp_path / "results.jsonl"
    lanes = merge_lanes(segments_of(tmp_path, split), tmp_path / "parts", dest, split.routes, False)
    assert lanes.out_of_order is not None and "does not add up" in lanes.out_of_order
    assert sorted(json.loads(text)["custom_id"] for text in dest.read_text().splitlines()) == [c for c, _ in MIXED]


def test_the_summary_gives_each_models_requests_usage_and_cost(tmp_path: Path) -> None:
    lanes, _ = merged(tmp_path)
    now = time.time()
    job = Job("j", "in.jsonl", "", "", JobState.COLLECTING, now, now, model=None, request_count=7)
    summary = build_summary(job, [], lanes.counts, now, tmp_path / "results.jsonl", PRICES, lanes.lanes)
    assert summary["model"] is None
    models = summary["models"]
    assert list(models) == ["a", "b", "c"]
    assert [models[m]["requests"] for m in "abc"] == [4, 2, 1]
    for model, count in zip("abc", [4, 2, 1], strict=True):
        prompt, completion = TOKENS[model]
        usage = models[model]["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (count * prompt, count * completion)
        price = PRICES[model]
        expected = round(count * (prompt * price.input + completion * price.output) / 1_000_000, 9)
        assert models[model]["estimated_cost_usd"] == pytest.approx(expected)
        assert models[model]["price_usd_per_1m_tokens"] == price._asdict()
    assert summary["estimated_cost_usd"] == pytest.approx(sum(models[m]["estimated_cost_usd"] for m in "abc"))
    assert summary["usage"]["input_tokens"] == sum(n * TOKENS[m][0] for m, n in zip("abc", [4, 2, 1], strict=True))
    unpriced = build_summary(job, [], lanes.counts, now, tmp_path / "results.jsonl", {"a": PRICES["a"]}, lanes.lanes)
    assert unpriced["estimated_cost_usd"] is None and unpriced["models"]["a"]["estimated_cost_usd"] is not None


def test_an_input_of_one_model_has_one_models_entry_matching_the_totals(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(result("x", "a") + result("y", "a"))
    now = time.time()
    job = Job("j", "in.jsonl", "", "", JobState.COLLECTING, now, now, model="a", request_count=2)
    summary = build_summary(job, [], Counter(succeeded=2), now, results, PRICES)
    assert summary["model"] == "a" and list(summary["models"]) == ["a"]
    entry = summary["models"]["a"]
    assert entry["requests"] == 2 and entry["usage"] == summary["usage"]
    assert entry["estimated_cost_usd"] == summary["estimated_cost_usd"] is not None


def test_a_request_an_expired_batch_never_ran_keeps_its_place_among_the_other_models(tmp_path: Path) -> None:
    split = split_input(tmp_path)
    segments = segments_of(tmp_path, split)
    b_segment = segments[1]  # r1 and r4: its batch expired after running r1 only
    b_segment.downloads[0].write_text(result("r1", "b"))
    b_segment.last_status = "expired"
    dest = tmp_path / "results.jsonl"
    lanes = merge_lanes(segments, tmp_path / "parts", dest, split.routes, False)
    lines = [json.loads(text) for text in dest.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [cid for cid, _ in MIXED]
    assert lines[4]["response"] is None and lines[4]["error"] is not None, "r4 is written as not run, in its place"
    assert lanes.counts == Counter(succeeded=6, not_run=1) and lanes.lanes["b"].requests == 2
