"""A `[providers.default]` of kind azure, end to end: the daemon against the emulator's azure flavour."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service import holds
from daemon.state.states import JobState, PartOutcome
from tests.support import FAST, Harness, drop_before_start, fast_settings, request_file, wait_until

DEPLOYMENT = "gpt-4o-mini-batch"  # the emulator's GlobalBatch deployment (EmulatorSettings.deployments)


@pytest.fixture(name="azure")
def azure_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator", flavour="azure")  # type: ignore[arg-type]
    with EmulatorServer(settings) as server:
        yield server


def azure_harness(tmp_path: Path, server: EmulatorServer, table: str) -> Harness:
    """The daemon with a `[providers.default]` read from a config file; the top-level base_url leads nowhere."""
    config = tmp_path / "batchd.toml"
    if "min_poll_interval" not in table:  # the kind's minute between polls would only slow the tests
        table += "min_poll_interval = 0\n"
    config.write_text(f'[providers.default]\nkind = "azure"\n{table}', encoding="utf-8")
    providers = load_settings(config, environ={}).providers
    root = tmp_path / "root"
    root.mkdir()
    return Harness(fast_settings(root, "http://127.0.0.1:9/unused", providers=providers), server)


@pytest.mark.parametrize("form", ["v1", "api-version"])
def test_default_profile_of_kind_azure_gets_results(tmp_path: Path, azure: EmulatorServer, form: str) -> None:
    """The v1 endpoint, and the api-version form (which refuses a request without api-version, or
    with a plain key as Bearer): both are only reached with the profile's header and query."""
    table = f'base_url = "{azure.base_url}"\n'
    if form == "api-version":
        table = f'base_url = "{azure.url}/openai"\napi_version = "2024-10-21"\n'
    harness = azure_harness(tmp_path, azure, table).start()
    try:
        harness.drop("azure.jsonl", request_file(3, model=DEPLOYMENT))
        harness.wait_job("azure.jsonl")
        results = harness.results("azure.jsonl")
    finally:
        harness.stop()
    assert sorted(line["custom_id"] for line in results) == ["r0", "r1", "r2"]
    assert all(line["response"]["status_code"] == 200 for line in results)


MAPPED = "my-gpt4o-mini-batch"  # the deployment the profile's model map names for gpt-4o-mini
MODELS = f'models = {{ "gpt-4o-mini" = "{MAPPED}" }}\n'


@pytest.fixture(name="mapped_azure")
def mapped_azure_fixture(tmp_path: Path) -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(
        **FAST,  # type: ignore[arg-type]
        data_dir=tmp_path / "emulator",
        flavour="azure",
        deployments=(MAPPED,),
    )
    with EmulatorServer(settings) as server:
        yield server


def azure_lines(model: str, prefix: str = "r") -> bytes:
    """Requests in Azure's url form, written as no serialiser would write them again."""
    return b"".join(
        (
            f'{{"custom_id": "{prefix}{i}",  "method":"POST", "url": "/chat/completions", "body": {{"seed": '
            f'123456789012345678901234567890, "model" : "{model}", "max_tokens": 1e5, "messages": '
            '[{"role": "user", "content": "caf\\u00e9 \\"model\\": x"}], "top_p":0.10}}\n'
        ).encode()
        for i in range(3)
    )


def test_the_model_map_renames_only_the_model_in_the_upload_and_results_show_the_users_model(
    tmp_path: Path, mapped_azure: EmulatorServer
) -> None:
    harness = azure_harness(tmp_path, mapped_azure, f'base_url = "{mapped_azure.base_url}"\n{MODELS}').start()
    try:
        harness.drop("mapped.jsonl", azure_lines("gpt-4o-mini").decode())
        job = harness.wait_job("mapped.jsonl")
        results = harness.results("mapped.jsonl")
        summary = harness.summary("mapped.jsonl")
    finally:
        harness.stop()
    (batch,) = mapped_azure.batches()
    assert batch["endpoint"] in ("/chat/completions", "/v1/chat/completions")
    assert mapped_azure.file_bytes(batch["input_file_id"]) == azure_lines(MAPPED), "only the model's bytes changed"
    assert [line["custom_id"] for line in results] == ["r0", "r1", "r2"]
    assert {line["response"]["body"]["model"] for line in results} == {"gpt-4o-mini"}
    assert summary["outcomes"]["succeeded"] == 3
    folder = Path(job.result_dir or "")
    raw = (folder / f"{batch['id']}_output.jsonl").read_bytes()
    assert raw == mapped_azure.file_bytes(batch["output_file_id"]), "the download stays as the service sent it"
    assert [json.loads(line)["response"]["body"]["model"] for line in raw.splitlines()] == [MAPPED] * 3
    assert (folder / f"{batch['id']}_errors.jsonl").read_bytes() == b"", "Azure's 0-byte error file is fine"
    # Every byte of the service's line reaches results.jsonl (content filter verdicts too) but the model's name.
    theirs = {json.loads(line)["custom_id"]: line for line in raw.splitlines()}
    mine = (folder / "results.jsonl").read_bytes().splitlines()
    back = b'"model":"gpt-4o-mini"'
    assert mine == [theirs[f"r{i}"].replace(f'"model":"{MAPPED}"'.encode(), back) for i in range(3)]
    assert all(b'"content_filter_results"' in line and b'"prompt_filter_results"' in line for line in mine)


def test_small_inputs_sharing_a_batch_are_renamed_and_restored(tmp_path: Path, mapped_azure: EmulatorServer) -> None:
    harness = azure_harness(tmp_path, mapped_azure, f'base_url = "{mapped_azure.base_url}"\n{MODELS}')
    harness.settings = dataclasses.replace(harness.settings, pack_wait=10)
    files = {f"{name}.jsonl": azure_lines("gpt-4o-mini", prefix=name).decode() for name in "abc"}
    drop_before_start(harness, files)
    harness.start()
    try:
        for name in files:
            harness.wait_job(name)
        results = {name: harness.results(name) for name in files}
    finally:
        harness.stop()
    (batch,) = mapped_azure.batches()
    assert mapped_azure.file_bytes(batch["input_file_id"]).count(b'"model" : "my-gpt4o-mini-batch"') == 9
    for name, lines in results.items():
        assert [line["custom_id"] for line in lines] == [f"{name[0]}{i}" for i in range(3)]
        assert {line["response"]["body"]["model"] for line in lines} == {"gpt-4o-mini"}


def test_a_model_not_in_the_map_is_sent_as_written_and_its_refusal_reported(
    tmp_path: Path, mapped_azure: EmulatorServer
) -> None:
    harness = azure_harness(tmp_path, mapped_azure, f'base_url = "{mapped_azure.base_url}"\n{MODELS}').start()
    try:
        harness.drop("unmapped.jsonl", azure_lines("gpt-4.1").decode())
        harness.wait_job("unmapped.jsonl", JobState.FAILED)
        report = next((harness.settings.failed).glob("unmapped*.report.txt")).read_text()
    finally:
        harness.stop()
    (batch,) = mapped_azure.batches()
    assert mapped_azure.file_bytes(batch["input_file_id"]) == azure_lines("gpt-4.1")
    assert "model_not_found" in report and "gpt-4.1" in report


QUEUE_FULL = (
    '{"error": {"code": "token_limit_exceeded", "type": "invalid_request_error", "param": null, "message": '
    '"Enqueued token limit reached for my-gpt4o-mini-batch in this region. Limit: 90,000 enqueued tokens. '
    'Please try again later."}}'
)


def test_token_limit_exceeded_when_creating_holds_the_model_and_creates_once_later(
    tmp_path: Path, mapped_azure: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure says its queue is full when the batch is created, not at validation: no batch exists,
    so the part is not refused (a 400) but waits, the limit is learned, and one batch follows."""
    monkeypatch.setattr(holds, "TOKEN_LIMIT_RETRY", 0.4)
    mapped_azure.faults.add_rule(action="reply", method="POST", path_prefix="/batches", status=400, body=QUEUE_FULL)
    harness = azure_harness(tmp_path, mapped_azure, f'base_url = "{mapped_azure.base_url}"\n{MODELS}').start()
    try:
        harness.drop("full.jsonl", azure_lines("gpt-4o-mini").decode())
        job = harness.wait_job("full.jsonl")
        assert harness.store is not None
        learned = harness.store.fact("token_limit:gpt-4o-mini")
        (part,) = harness.store.parts(job.id)
        results = harness.results("full.jsonl")
    finally:
        harness.stop()
    assert mapped_azure.faults.fired == 1
    assert len(mapped_azure.batches()) == 1
    assert learned == "90000"
    assert part.outcome != PartOutcome.REFUSED
    assert [line["response"]["status_code"] for line in results] == [200] * 3


def test_a_never_ending_azure_batch_is_cancelled_by_its_profiles_max_batch_age(
    tmp_path: Path, azure: EmulatorServer
) -> None:
    """The top-level max_batch_age is unset (30 h); the profile's own 1 s ends the batch, whose
    finished half is kept and whose rest goes again."""
    azure.mishaps.never_end_next(1)  # Azure runs a batch until it is cancelled
    harness = azure_harness(tmp_path, azure, f'base_url = "{azure.base_url}"\nmax_batch_age = 1\n').start()
    try:
        harness.drop("endless.jsonl", request_file(4, model=DEPLOYMENT))
        harness.wait_job("endless.jsonl", JobState.DONE)
        summary = harness.summary("endless.jsonl")
    finally:
        harness.stop()
    assert harness.settings.max_batch_age is None
    first, second = azure.batches()
    assert (first["status"].lower(), second["status"].lower()) == ("cancelled", "completed")
    assert summary["outcomes"] == {"succeeded": 4, "failed": 0, "not_run": 0}


def test_an_azure_batch_is_first_polled_after_its_profiles_min_poll_interval(
    tmp_path: Path, azure: EmulatorServer
) -> None:
    harness = azure_harness(tmp_path, azure, f'base_url = "{azure.base_url}"\nmin_poll_interval = 30\n').start()
    try:
        harness.drop("slow.jsonl", request_file(2, model=DEPLOYMENT))
        job = harness.wait_job("slow.jsonl", JobState.ACTIVE)
        assert harness.store is not None
        store = harness.store
        part = wait_until(
            lambda: next((p for p in store.parts(job.id) if p.submitted_at), None), what="the batch created"
        )
    finally:
        harness.stop()
    assert part.next_action_at - (part.submitted_at or 0.0) == 30.0  # not first_poll_after
