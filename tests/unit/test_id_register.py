"""The one-file custom_id rule kept in a compact hash table: exact whatever the hashes, small for many ids."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.intake.id_register import IdRegister, lines_at
from daemon.intake.validation import BatchLimits, Findings, HashingReader, LineChecker, iter_requests, validate_file

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def line(cid: str, method: str = "POST") -> str:
    return json.dumps({"custom_id": cid, "method": method, "url": "/v1/chat/completions", "body": BODY})


def checked(lines: list[str], id_hash: Callable[[str], int] = hash, prefix: bytes = b"") -> Findings:
    source = io.BytesIO(prefix + "".join(f"{text}\n" for text in lines).encode())
    source.seek(len(prefix))  # settling reads from where the pass started, not from the file's start
    checker = LineChecker(BatchLimits(), id_hash)
    for _ in iter_requests(source, checker):
        pass
    assert source.tell() == len(source.getvalue()), "the file is left where the pass ended"
    return checker.finish()


def expected_repeats(ids: list[str]) -> list[tuple[int, str]]:
    """What the rule reports, by the plain dict the table replaces."""
    first: dict[str, int] = {}
    found = []
    for line_no, cid in enumerate(ids, 1):
        if cid in first:
            found.append((line_no, f"custom_id {cid!r} is already used on line {first[cid]}"))
        else:
            first[cid] = line_no
    return found


def same_hash(_: str) -> int:
    return 42


@pytest.mark.parametrize("id_hash", [hash, same_hash, len], ids=["real", "all-collide", "by-length"])
def test_repeats_are_reported_exactly_with_the_first_line_whatever_the_hashes(id_hash: Callable[[str], int]) -> None:
    rng = random.Random(7)
    ids = [rng.choice(["a", "b", "cc", "dd", "eee", f"u{n}"]) for n in range(300)]
    findings = checked([line(cid) for cid in ids], id_hash, prefix=b"ignored bytes before the pass\n")
    repeats = expected_repeats(ids)
    assert findings.problems == repeats[:100]
    assert findings.problem_count == len(repeats)
    assert findings.requests == len(ids) - len(repeats), "a repeated line is not counted as a request"


def test_ids_sharing_a_hash_are_not_repeats() -> None:
    findings = checked([line(f"id{n}") for n in range(50)], same_hash)
    assert findings.ok, findings.problems[:3]
    assert findings.requests == 50


def test_a_repeat_names_the_first_line_of_its_own_id_not_of_its_hash() -> None:
    findings = checked([line("x"), line("y"), line("y")], same_hash)
    assert findings.problems == [(3, "custom_id 'y' is already used on line 2")]


def test_a_repeat_is_listed_first_on_its_line_and_in_line_order_among_other_problems() -> None:
    lines = [line("a"), line("b", method="GET"), line("a", method="GET"), "{not json", line("b")]
    problems = checked(lines).problems
    assert [(n, text.split(" ")[0]) for n, text in problems] == [
        (2, "method"),
        (3, "custom_id"),
        (3, "method"),
        (4, "not"),
        (5, "custom_id"),
    ]
    assert problems[1] == (3, "custom_id 'a' is already used on line 1")
    assert problems[4] == (5, "custom_id 'b' is already used on line 2")


def test_only_the_first_hundred_problems_are_listed_in_line_order() -> None:
    lines = [line("a") if n % 2 else "[1]" for n in range(400)]  # odd lines repeat 'a', even are arrays
    findings = checked(lines)
    assert findings.problem_count == 399
    assert findings.problems == sorted(findings.problems, key=lambda problem: problem[0])
    assert [n for n, _ in findings.problems] == [1, *range(3, 102)], "line 2 is the first use of 'a'"


def test_settling_does_not_change_the_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(f"{line(cid)}\n" for cid in ["a", "b", "a"]))
    with open(path, "rb") as fh:
        reader = HashingReader(fh)
        checker = LineChecker(BatchLimits(), same_hash)
        assert len(list(iter_requests(reader, checker))) == 3, "a repeat is only known after the pass"
        assert checker.finish().problems == [(3, "custom_id 'a' is already used on line 1")]
        assert reader.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert validate_file(path).problems == [(3, "custom_id 'a' is already used on line 1")]


def test_ids_are_kept_as_the_table_grows() -> None:
    ids = [f"id{n}" for n in range(20_000)]  # past several growths of the table
    findings = checked([line(cid) for cid in [*ids, "id0", "id19999", "id7"]])
    assert findings.problems == [
        (20_001, "custom_id 'id0' is already used on line 1"),
        (20_002, "custom_id 'id19999' is already used on line 20000"),
        (20_003, "custom_id 'id7' is already used on line 8"),
    ]


def test_line_numbers_past_four_billion_are_kept() -> None:
    far = 5_000_000_000
    register = IdRegister()
    assert [register.add(cid, n) for n, cid in [(1, "a"), (far, "b"), (far + 1, "b"), (far + 2, "a")]] == [
        True,
        True,
        False,
        False,
    ]
    assert list(register.candidates) == [far + 1, far + 2]
    assert list(register.earlier) == [far, 1], "the first line with each hash, exactly"


def test_lines_at_numbers_lines_as_the_reader_does() -> None:
    data = b"one\n\r\n" + b"x" * 3_000_000 + b"\nfour\nfive"
    found = list(lines_at(io.BytesIO(data), 0, [1, 3, 4, 5]))
    assert [n for n, _ in found] == [1, 3, 4, 5]
    assert found[1][1] == b"x" * 3_000_000 + b"\n"
    assert (found[2][1], found[3][1]) == (b"four\n", b"five")


def test_many_ids_take_a_fraction_of_a_dict() -> None:
    count = 100_000
    raws = [f"{line(f'request-{n:08d}')}\n".encode() for n in range(count)]
    checker = LineChecker(BatchLimits())
    tracemalloc.start()
    try:
        for line_no, raw in enumerate(raws, 1):
            checker.check(line_no, raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert checker.findings.requests == count
    # A dict of the ids to their lines took about 140 bytes an id at its peak; the table takes at most
    # 48 (half full at worst, and the old table beside the new one while it grows), whatever an id's
    # length: 12 bytes a slot.
    assert peak < 60 * count, f"{peak / count:.0f} bytes an id"


def test_a_line_changed_since_the_pass_is_not_called_a_repeat() -> None:
    register = IdRegister()
    assert [register.add(cid, n) for n, cid in [(1, "a"), (2, "a")]] == [True, False]
    changed = io.BytesIO(f"{line('a')}\n[1]\n".encode())  # line 2 is no longer a request
    assert list(register.settle(changed, 0)) == []
    same = io.BytesIO(f"{line('a')}\n{line('a')}\n".encode())
    assert list(register.settle(same, 0)) == [(2, "a", 1)]
