"""`batchd validate` on a file split by model (split_by_model): each model's requests, batches,
estimated input tokens and cost at that model's price; the file's cost is their sum, unknown if
any model's price is; the ok line names the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.file_checks import _show
from daemon.cli.main import main
from daemon.intake.estimates import Estimate, estimate_of, lanes_of
from daemon.intake.validation import BatchLimits, Findings, Request
from daemon.pricing import DEFAULT_PRICES
from tests.support import request_line

MINI, FULL = "gpt-4o-mini", "gpt-4o"
ENDPOINT = "/v1/chat/completions"
LIMITS = BatchLimits(max_requests=2, max_bytes=10_000_000, max_embedding_inputs=50_000, max_tokens=None)


def _requests(*models: str) -> list[Request]:
    found = []
    for n, model in enumerate(models):
        data = (request_line(f"r{n}", model=model) + "\n").encode()
        found.append(Request(n + 1, data, f"r{n}", 0, 100 * (n + 1), model=model))
    return found


def _findings(*models: str) -> Findings:
    return Findings(requests=len(models), endpoint=ENDPOINT, model=models[0])


def test_each_model_makes_its_own_batches_at_its_own_price() -> None:
    models = (MINI, FULL, MINI, MINI)  # MINI's three requests make two batches of at most 2; FULL's one
    estimate = estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), _split_limits()), DEFAULT_PRICES)
    shares = {m.model: (m.requests, m.batches, m.input_tokens) for m in estimate.models}
    assert shares == {MINI: (3, 2, 100 + 300 + 400), FULL: (1, 1, 200)}
    assert (estimate.batches, estimate.input_tokens) == (3, 1000)
    expected = (800 * DEFAULT_PRICES[MINI].input + 200 * DEFAULT_PRICES[FULL].input) / 1e6
    assert estimate.input_cost == pytest.approx(expected) and estimate.price is None
    document = estimate.as_json()
    assert [m["model"] for m in document["models"]] == [MINI, FULL]
    assert document["models"][1]["estimated_input_cost_usd"] == pytest.approx(200 * DEFAULT_PRICES[FULL].input / 1e6)
    lines = estimate.text().splitlines()
    assert lines[0].startswith("would make 3 batches; estimated input tokens ~1,000; estimated input cost $")
    assert lines[1] == f"  {MINI}: 3 requests, 2 batches, ~800 input tokens, $0.000060 at $0.075 per 1M input tokens"
    assert lines[2].startswith(f"  {FULL}: 1 request, 1 batch, ~200 input tokens, $")


def _split_limits() -> BatchLimits:
    return BatchLimits(
        LIMITS.max_requests, LIMITS.max_bytes, LIMITS.max_embedding_inputs, LIMITS.max_tokens, split_models=True
    )


def test_without_the_setting_the_file_is_one_lane() -> None:
    models = (MINI, FULL, MINI, MINI)
    estimate = estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), LIMITS), DEFAULT_PRICES)
    assert estimate.batches == 2 and len(estimate.models) == 1, "as the splitter cuts one file: 2 + 2"


def test_the_files_cost_is_unknown_if_one_models_price_is() -> None:
    models = (MINI, "my-fine-tune")
    estimate = estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), _split_limits()), DEFAULT_PRICES)
    assert estimate.input_cost is None
    head, mini, tuned = estimate.text().splitlines()
    assert head.endswith("estimated input cost unknown: no price known for my-fine-tune (each model below)")
    assert mini.startswith(f"  {MINI}: 1 request, 1 batch") and "$" in mini
    assert tuned.endswith('no price known for model my-fine-tune: add [prices."my-fine-tune"] to the config for a cost')


def test_the_ok_line_names_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    models = (MINI, FULL)
    estimate = estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), _split_limits()), DEFAULT_PRICES)
    _show(Path("mixed.jsonl"), estimate, [], "default")
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"mixed.jsonl: ok (2 requests, {ENDPOINT}, models {MINI} + {FULL})"


def test_validate_json_gives_each_models_share_of_a_real_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHD_SPLIT_BY_MODEL", "true")
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(request_line(f"r{n}", model=m) + "\n" for n, m in enumerate((MINI, FULL, MINI))))
    assert main(["validate", "--root", str(tmp_path), "--json", str(path)]) == 0
    (document,) = json.loads(capsys.readouterr().out)
    assert [(m["model"], m["requests"], m["batches"]) for m in document["models"]] == [(MINI, 2, 1), (FULL, 1, 1)]
    assert document["batches"] == 2 and document["estimated_input_cost_usd"] is not None


def test_each_model_is_printed_on_a_line_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    models = (MINI, FULL, MINI)
    estimate = estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), _split_limits()), DEFAULT_PRICES)
    _show(Path("mixed.jsonl"), estimate, [], "default")
    out = capsys.readouterr().out
    assert "\\n" not in out, "the terminal escaping showed the per-model lines as one line full of \\n"
    lines = out.splitlines()
    assert len(lines) == 4 and lines[1].startswith("  would make 2 batches")
    assert lines[2].startswith(f"    {MINI}: 2 requests, 1 batch,") and lines[3].startswith(f"    {FULL}: 1 request,")


def _claude_line(cid: str, model: str) -> str:
    params = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
    return json.dumps({"custom_id": cid, "params": params}) + "\n"


def test_an_anthropic_file_outside_a_profiles_folder_is_split_by_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "claude.jsonl"
    path.write_text(_claude_line("q-1", "claude-sonnet-4-5") + _claude_line("q-2", "claude-haiku-4-5"))
    assert main(["validate", "--root", str(tmp_path), "--format", "anthropic", str(path)]) == 1
    assert "set split_by_model = true" in capsys.readouterr().out
    (tmp_path / "on.toml").write_text("split_by_model = true\n")
    for shape in ("anthropic", "auto"):  # told, or told by the first line's shape
        args = ["validate", "--root", str(tmp_path), "--config", str(tmp_path / "on.toml"), "--format", shape]
        assert main([*args, str(path)]) == 0
        assert "models claude-sonnet-4-5 + claude-haiku-4-5" in capsys.readouterr().out


def _split_estimate(*models: str) -> Estimate:
    return estimate_of(_findings(*models), lanes_of(Path("f"), _requests(*models), _split_limits()), DEFAULT_PRICES)


def test_the_json_of_a_file_split_by_model_names_no_one_model_at_the_top() -> None:
    """As summary.json: the top-level model is null and each model is in models (the first was passed off as
    the file's)."""
    mixed = _split_estimate(MINI, FULL).as_json()
    assert mixed["model"] is None and [m["model"] for m in mixed["models"]] == [MINI, FULL]
    assert _split_estimate(MINI, MINI).as_json()["model"] == MINI
