"""split_by_model against the emulator: an input naming several models goes in one batch per part,
each batch naming one model; results.jsonl lists every request in input order with its own model's
answer, summary.json gives each model's share; an expired model's unfinished requests go again
without disturbing the order or re-running anything; without the setting the report names it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli.retry_failed import rerun_failed
from daemon.config import load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.intake.reports import report_path
from daemon.pricing import DEFAULT_PRICES, ModelPrice
from daemon.state.states import JobState
from tests.support import FAST, Harness, fast_settings, request_line

# a, b, a, c, b, ...: three models interleaved; with 3 requests a batch, gpt-4o-mini needs 2 parts.
ORDER = ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]
ORDER += ["gpt-4.1-nano", "gpt-4o", "gpt-4o-mini"]


@pytest.fixture(name="server")
def server_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(**FAST, data_dir=tmp_path / "emulator")) as server:  # type: ignore[arg-type]
        yield server


def harness(tmp_path: Path, server: EmulatorServer, split: bool) -> Harness:
    root = tmp_path / "root"
    root.mkdir()
    return Harness(fast_settings(root, server.base_url, split_by_model=split, max_requests_per_batch=3), server)


def mixed(models: list[str]) -> tuple[list[str], str]:
    ids = [f"q{n:02d}" for n in range(len(models))]
    return ids, "".join(request_line(cid, model=model) + "\n" for cid, model in zip(ids, models, strict=True))


def batch_models(server: EmulatorServer) -> list[set[str]]:
    """The models each batch's input lines name, batch by batch."""
    return [
        {json.loads(raw)["body"]["model"] for raw in server.file_bytes(batch["input_file_id"]).splitlines()}
        for batch in server.batches()
    ]


def ran_ids(server: EmulatorServer) -> Counter[str]:
    """Requests answered in any batch's output file (each must be answered once)."""
    ran: Counter[str] = Counter()
    for batch in server.batches():
        if batch["output_file_id"]:
            ran.update(json.loads(raw)["custom_id"] for raw in server.file_bytes(batch["output_file_id"]).splitlines())
    return ran


def test_a_mixed_input_goes_in_one_batch_per_part_and_comes_back_in_input_order(
    tmp_path: Path, server: EmulatorServer
) -> None:
    daemon = harness(tmp_path, server, split=True).start()
    try:
        ids, text = mixed(ORDER)
        daemon.drop("mixed.jsonl", text)
        job = daemon.wait_job("mixed.jsonl", timeout=30)
        assert daemon.store is not None
        parts = daemon.store.parts(job.id)
        assert sorted((p.model, p.request_count) for p in parts) == [
            ("gpt-4.1-nano", 2),
            ("gpt-4o", 3),
            ("gpt-4o-mini", 2),
            ("gpt-4o-mini", 3),
        ]
        assert job.model is None
        assert sorted(min(m) for m in batch_models(server)) == sorted(p.model or "" for p in parts)
        assert all(len(m) == 1 for m in batch_models(server)), "each batch names one model"
        results = daemon.results("mixed.jsonl")
        assert [r["custom_id"] for r in results] == ids, "input order"
        assert [r["response"]["body"]["model"] for r in results] == ORDER, "each answered by its own model"
        summary = daemon.summary("mixed.jsonl")
    finally:
        daemon.stop()
    assert summary["model"] is None and summary["outcomes"]["succeeded"] == len(ORDER)
    models = summary["models"]
    assert list(models) == ["gpt-4o-mini", "gpt-4o", "gpt-4.1-nano"], "in order of first use"
    assert {m: e["requests"] for m, e in models.items()} == dict(Counter(ORDER))
    assert sum(e["usage"]["input_tokens"] for e in models.values()) == summary["usage"]["input_tokens"] > 0
    assert all(e["estimated_cost_usd"] and e["price_usd_per_1m_tokens"] for e in models.values())
    assert summary["estimated_cost_usd"] == pytest.approx(sum(e["estimated_cost_usd"] for e in models.values()))
    assert "results_order" not in summary


def test_one_models_expired_batch_resends_only_its_unfinished_requests_and_keeps_the_order(
    tmp_path: Path, server: EmulatorServer
) -> None:
    expiring = "gpt-4o-expire"  # the emulator expires its batches with about half the requests done
    order = [expiring if model == "gpt-4o" else model for model in ORDER]
    daemon = harness(tmp_path, server, split=True).start()
    try:
        ids, text = mixed(order)
        daemon.drop("expiring.jsonl", text)
        daemon.wait_job("expiring.jsonl", timeout=40)
        results = daemon.results("expiring.jsonl")
        summary = daemon.summary("expiring.jsonl")
    finally:
        daemon.stop()
    assert [r["custom_id"] for r in results] == ids, "input order, across the resubmission"
    succeeded = [r["custom_id"] for r in results if r["response"] and r["response"]["status_code"] == 200]
    assert ran_ids(server) == Counter(succeeded), "nothing that ran was sent again"
    assert any(b["status"] == "expired" for b in server.batches())
    named = batch_models(server)
    assert all(len(models) == 1 for models in named), "each batch names one model, the resubmissions too"
    assert named.count({expiring}) >= 2, "its unfinished requests went again in a batch of their own"
    for result, model in zip(results, order, strict=True):
        if result["response"]:
            assert result["response"]["body"]["model"] == model
        else:
            assert model == expiring, "only the expiring model's requests may be left unrun"
    assert summary["models"][expiring]["requests"] == order.count(expiring)
    assert summary["estimated_cost_usd"] is None, "the expiring model has no price: no total either"
    assert summary["models"]["gpt-4o-mini"]["estimated_cost_usd"] is not None


def test_without_the_setting_a_mixed_input_fails_with_a_report_naming_it(
    tmp_path: Path, server: EmulatorServer
) -> None:
    daemon = harness(tmp_path, server, split=False).start()
    try:
        daemon.drop("mixed.jsonl", mixed(ORDER)[1])
        job = daemon.wait_job("mixed.jsonl", JobState.REJECTED, timeout=20)
    finally:
        daemon.stop()
    assert job.final_path is not None
    report = report_path(Path(job.final_path)).read_text()
    assert "3 lines (2, 5, 9): model 'gpt-4o' differs from 'gpt-4o-mini' on line 1; one file, one model" in report
    assert "(set split_by_model = true to send one batch per model)" in report
    assert server.batches() == []


def test_retry_failed_of_a_mixed_input_sends_again_only_the_failed_lines(
    tmp_path: Path, server: EmulatorServer
) -> None:
    failing = "gpt-4o-fail-all"  # the emulator fails every request of its batches
    order = [failing if model == "gpt-4o" else model for model in ORDER]
    ids, text = mixed(order)
    daemon = harness(tmp_path, server, split=True).start()
    try:
        daemon.drop("mixed.jsonl", text)
        daemon.wait_job("mixed.jsonl", timeout=30)
        rerun = rerun_failed(daemon.settings, "mixed.jsonl")
        expected = [line for line, model in zip(text.splitlines(), order, strict=True) if model == failing]
        assert rerun.dest.read_text().splitlines() == expected, "the failed lines, byte for byte, in input order"
        daemon.wait_job(rerun.dest.name, timeout=30)
        again = daemon.results(rerun.dest.name)
    finally:
        daemon.stop()
    assert [r["custom_id"] for r in again] == [cid for cid, model in zip(ids, order, strict=True) if model == failing]


def test_a_claude_input_naming_two_models_goes_per_model_and_comes_back_in_input_order(
    tmp_path: Path, anthropic_server: EmulatorServer
) -> None:
    models = ["claude-test", "claude-other", "claude-test", "claude-test", "claude-other"]
    lines = [claude_line(f"m{n}", model) for n, model in enumerate(models)]
    root = tmp_path / "root"
    root.mkdir()
    config = root / "batchd.toml"
    config.write_text(
        f'[providers.claude]\nkind = "anthropic"\nbase_url = "{anthropic_server.base_url}"\n'
        "split_by_model = true\nmax_requests_per_batch = 2\n"
    )
    providers = load_settings(config, environ={}).providers
    prices = {**DEFAULT_PRICES, "claude-test": ModelPrice(1.0, 2.0), "claude-other": ModelPrice(3.0, 4.0)}
    settings = fast_settings(root, "http://127.0.0.1:9", providers=providers, prices=prices)
    daemon = Harness(settings, anthropic_server).start()
    try:
        daemon.drop("two.jsonl", "".join(lines), folder="claude")
        daemon.wait_job("two.jsonl", timeout=30)
        results = daemon.results("two.jsonl")
        summary = daemon.summary("two.jsonl")
    finally:
        daemon.stop()
    named = [
        {json.loads(raw)["params"]["model"] for raw in batch.plan.input_path.read_bytes().splitlines()}
        for batch in anthropic_server.message_batches.batches()
    ]
    assert sorted(min(m) for m in named) == ["claude-other", "claude-test", "claude-test"]
    assert all(len(m) == 1 for m in named), "each batch names one model"
    assert [line["custom_id"] for line in results] == [f"m{n}" for n in range(len(models))]
    assert [line["result"]["message"]["model"] for line in results] == models
    assert summary["model"] is None and list(summary["models"]) == ["claude-test", "claude-other"]
    for model, entry in summary["models"].items():
        assert entry["requests"] == models.count(model) and "cache_read_input_tokens" in entry["usage"]
    costs = [entry["estimated_cost_usd"] for entry in summary["models"].values()]
    assert all(costs) and summary["estimated_cost_usd"] == pytest.approx(sum(costs))


def claude_line(cid: str, model: str) -> str:
    params = {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": f"say {cid}"}]}
    return json.dumps({"custom_id": cid, "params": params}) + "\n"


def test_an_azure_profiles_model_map_is_applied_and_undone_per_model(tmp_path: Path) -> None:
    deployments = {"gpt-4o-mini": "mini-batch", "gpt-4o": "big-batch"}
    emulator = EmulatorSettings(
        **FAST,  # type: ignore[arg-type]
        data_dir=tmp_path / "azure",
        flavour="azure",
        deployments=tuple(deployments.values()),
    )
    with EmulatorServer(emulator) as server:
        root = tmp_path / "root"
        root.mkdir()
        config = root / "batchd.toml"
        table = ", ".join(f'"{model}" = "{name}"' for model, name in deployments.items())
        config.write_text(
            f'[providers.default]\nkind = "azure"\nbase_url = "{server.base_url}"\nmin_poll_interval = 0\n'
            f"split_by_model = true\nmodels = {{ {table} }}\n"
        )
        providers = load_settings(config, environ={}).providers
        daemon = Harness(fast_settings(root, "http://127.0.0.1:9/unused", providers=providers), server).start()
        order = ["gpt-4o-mini", "gpt-4o", "gpt-4o", "gpt-4o-mini"]
        try:
            ids, text = mixed(order)
            daemon.drop("azure.jsonl", text)
            daemon.wait_job("azure.jsonl", timeout=30)
            results = daemon.results("azure.jsonl")
        finally:
            daemon.stop()
        assert sorted(min(m) for m in batch_models(server)) == ["big-batch", "mini-batch"]
    assert [r["custom_id"] for r in results] == ids
    assert [r["response"]["body"]["model"] for r in results] == order, "each deployment named back as its model"


def test_a_report_of_one_models_refused_batch_names_retry_failed_not_the_whole_input_again(
    tmp_path: Path, server: EmulatorServer
) -> None:
    """The other models' requests ran and are paid for: the report's command sends only what did not run."""
    refused = "gpt-4o-fail-validation"  # the emulator fails its batches when validating ends
    order = [refused if model == "gpt-4o" else model for model in ORDER]
    ids, text = mixed(order)
    daemon = harness(tmp_path, server, split=True).start()
    try:
        daemon.drop("mixed.jsonl", text)
        job = daemon.wait_job("mixed.jsonl", JobState.FAILED, timeout=30)
    finally:
        daemon.stop()
    assert job.final_path is not None
    report = report_path(Path(job.final_path)).read_text()
    assert f"`batchd retry {job.id} --failed` sends only the requests that failed or did not run" in report
    assert "would send the whole input again, paid again" in report
    assert f"(model {refused}, input lines from 2, 3 requests), batch " in report, "which model's part was refused"
    assert f": line 1 of the batch (custom_id {ids[1]!r}): invalid_request" in report, "name the input's request"
