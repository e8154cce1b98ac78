"""batchd validate says what a file would make and cost before anything is sent."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.support import request_file


def test_validate_json_gives_batches_tokens_and_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHD_MAX_REQUESTS_PER_BATCH", "2")
    path = tmp_path / "five.jsonl"
    path.write_text(request_file(5, model="gpt-4o-mini"))
    assert main(["validate", "--root", str(tmp_path), "--json", str(path)]) == 0
    (document,) = json.loads(capsys.readouterr().out)
    tokens = sum((len(line) + 1) // 4 for line in path.read_text().splitlines())
    assert document["requests"] == 5
    assert document["batches"] == 3
    assert document["estimated_input_tokens"] == tokens
    assert document["estimated_input_cost_usd"] == pytest.approx(tokens * 0.075 / 1e6)
    assert document["problems"] == []


def test_validate_text_names_the_estimate_or_the_missing_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    priced, unpriced = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    priced.write_text(request_file(3, model="gpt-4o-mini-2024-07-18"))
    unpriced.write_text(request_file(3, model="my-model"))
    assert main(["validate", "--root", str(tmp_path), str(priced), str(unpriced)]) == 0
    out = capsys.readouterr().out
    assert "would make 1 batch; estimated input tokens ~" in out
    assert "at the batch price of $0.075 per 1M input tokens" in out
    assert 'no price known for model my-model: add [prices."my-model"]' in out


def test_validate_json_lists_a_bad_file_with_its_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}\n' * 4)
    assert main(["validate", "--root", str(tmp_path), "--json", str(path), str(tmp_path / "missing.jsonl")]) == 1
    bad, missing = json.loads(capsys.readouterr().out)
    assert (bad["ok"], bad["problem_count"]) == (False, 4)
    assert bad["problems"][0].startswith("all 4 lines: this line is a bare request body")
    assert missing["error"].startswith("cannot read")


def test_validate_reads_a_gzip_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "packed.jsonl.gz"
    path.write_bytes(gzip.compress(request_file(4).encode()))
    assert main(["validate", "--root", str(tmp_path), str(path)]) == 0
    assert "ok (4 requests" in capsys.readouterr().out


def test_validate_names_a_gzip_file_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_text(request_file(2))
    assert main(["validate", "--root", str(tmp_path), str(path)]) == 1
    assert "plain.jsonl.gz: cannot read: Not a gzipped file" in capsys.readouterr().out
