"""Splitting: parts within every per-batch limit, requests in input order, none lost."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.config import Settings
from daemon.intake.preparer import batch_limits
from daemon.intake.splitter import HOLD_BYTES, PartFile, Split, split_lines, write_normalised
from daemon.intake.validation import BatchLimits, Request


def line(cid: str, padding: int = 0) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * padding}]}
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions", "body": body})


def est_tokens(text: str) -> int:
    """The splitter's estimate for one line (it counts the normalised line with its LF)."""
    return max(1, (len(text.encode()) + 1) // 4)


def split(tmp_path: Path, lines: list[str], batch_limits: BatchLimits, hold: int = 0, end: str = "\n") -> Split:
    tmp_path.mkdir(exist_ok=True)
    source = tmp_path / "in.jsonl"
    source.write_bytes("".join(text + end for text in lines).encode())
    with open(source, "rb") as fh:
        result = split_lines(fh, tmp_path / "parts", batch_limits, hold)
    assert result.findings.ok, result.findings.problems
    return result


def ids_by_part(result: Split) -> list[list[str]]:
    return [[json.loads(text)["custom_id"] for text in p.path.read_text().splitlines()] for p in result.parts]


def test_token_budget_splits_into_parts_within_it_in_order(tmp_path: Path) -> None:
    lines = [line(f"r{i:02d}", padding=400) for i in range(30)]  # equal lengths: equal estimates
    each = est_tokens(lines[0])
    budget = 3 * each
    assert sum(est_tokens(text) for text in lines) == 10 * budget
    result = split(tmp_path, lines, BatchLimits(max_tokens=budget))
    assert ids_by_part(result) == [[f"r{i:02d}" for i in range(n, n + 3)] for n in range(0, 30, 3)]
    for part in result.parts:
        assert part.est_tokens <= budget
        assert part.est_tokens == sum(est_tokens(text) for text in part.path.read_text().splitlines())


def test_budget_one_token_short_of_three_requests_takes_two(tmp_path: Path) -> None:
    lines = [line(f"r{i:02d}", padding=400) for i in range(10)]
    result = split(tmp_path, lines, BatchLimits(max_tokens=3 * est_tokens(lines[0]) - 1))
    assert [p.request_count for p in result.parts] == [2, 2, 2, 2, 2]
    assert [p.first_line for p in result.parts] == [1, 3, 5, 7, 9]


def test_request_over_the_budget_alone_goes_alone(tmp_path: Path) -> None:
    small = [line(f"s{i}") for i in range(4)]
    huge = line("huge", padding=4000)
    budget = 2 * est_tokens(small[0])
    assert est_tokens(huge) > budget
    result = split(tmp_path, [small[0], small[1], huge, small[2], small[3]], BatchLimits(max_tokens=budget))
    assert ids_by_part(result) == [["s0", "s1"], ["huge"], ["s2", "s3"]]
    assert result.parts[1].est_tokens == est_tokens(huge)


def test_oversize_requests_first_and_in_a_row_each_get_a_part(tmp_path: Path) -> None:
    huge = [line(f"h{i}", padding=4000) for i in range(3)]
    result = split(tmp_path, [*huge, line("s0")], BatchLimits(max_tokens=10))
    assert ids_by_part(result) == [["h0"], ["h1"], ["h2"], ["s0"]]


def test_an_empty_part_takes_any_request_so_none_is_ever_dropped(tmp_path: Path) -> None:
    huge = Request(1, b"{}\n", "huge", 0, est_tokens=1_000)
    part = PartFile(tmp_path / "0.jsonl", first_line=1)
    assert part.fits(huge, BatchLimits(max_tokens=10))
    part.add(huge)
    assert not part.fits(Request(2, b"{}\n", "next", 0, est_tokens=1), BatchLimits(max_tokens=10))


def test_no_budget_by_default_and_the_tighter_limit_wins(tmp_path: Path) -> None:
    lines = [line(f"r{i:02d}", padding=400) for i in range(12)]
    assert [p.request_count for p in split(tmp_path / "a", lines, BatchLimits()).parts] == [12]
    tight = BatchLimits(max_requests=5, max_tokens=3 * est_tokens(lines[0]))
    assert [p.request_count for p in split(tmp_path / "b", lines, tight).parts] == [3, 3, 3, 3]
    tight = BatchLimits(max_requests=2, max_tokens=3 * est_tokens(lines[0]))
    assert [p.request_count for p in split(tmp_path / "c", lines, tight).parts] == [2] * 6


def test_preparer_passes_the_setting_through() -> None:
    assert batch_limits(Settings()).max_tokens is None
    assert batch_limits(Settings(max_tokens_per_batch=2_000_000)).max_tokens == 2_000_000


CRLF_AND_BLANK = "\r\n\r\n"  # as some Windows tools save files: CRLF endings, blank lines between


def test_a_small_input_is_held_normalised_and_no_file_is_written(tmp_path: Path) -> None:
    lines = [line(f"r{i}") for i in range(3)]
    result = split(tmp_path, lines, BatchLimits(), hold=3, end=CRLF_AND_BLANK)
    assert result.held == "".join(text + "\n" for text in lines).encode()
    assert [p.request_count for p in result.parts] == [3]
    assert not (tmp_path / "parts").exists()


def test_the_same_input_normalised_later_is_byte_for_byte_what_was_held(tmp_path: Path) -> None:
    result = split(tmp_path, [line(f"r{i}") for i in range(3)], BatchLimits(), hold=3, end=CRLF_AND_BLANK)
    write_normalised(tmp_path / "in.jsonl", tmp_path / "own" / "0.jsonl")
    assert (tmp_path / "own" / "0.jsonl").read_bytes() == result.held


def test_an_input_over_the_hold_is_written_as_usual(tmp_path: Path) -> None:
    lines = [line(f"r{i}") for i in range(4)]
    result = split(tmp_path, lines, BatchLimits(), hold=3, end=CRLF_AND_BLANK)
    assert result.held is None
    assert ids_by_part(result) == [[f"r{i}" for i in range(4)]]
    assert result.parts[0].path.read_bytes() == "".join(text + "\n" for text in lines).encode()


def test_an_input_over_the_hold_bytes_is_written_as_usual(tmp_path: Path) -> None:
    lines = [line(f"r{i}", padding=HOLD_BYTES // 3) for i in range(4)]
    result = split(tmp_path, lines, BatchLimits(), hold=1000)
    assert result.held is None
    assert ids_by_part(result) == [[f"r{i}" for i in range(4)]]


def test_an_input_of_two_parts_is_never_held(tmp_path: Path) -> None:
    result = split(tmp_path, [line(f"r{i}") for i in range(5)], BatchLimits(max_requests=3), hold=1000)
    assert result.held is None
    assert ids_by_part(result) == [["r0", "r1", "r2"], ["r3", "r4"]]
