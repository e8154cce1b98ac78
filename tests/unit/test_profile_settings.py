"""A job's own provider profile decides its batch age limit, completion window, split limits,
poll spacing and upload purpose; the top-level settings still rule where the profile is silent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.errors import ConfigError
from daemon.intake.claim import Intake
from daemon.intake.packer import Packer
from daemon.intake.preparer import batch_limits, prepare_jobs
from daemon.intake.splitter import split_lines
from daemon.providers import openai_default_profile, parse_profile
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.overdue_batches import age_limit
from daemon.state import folders
from daemon.state.states import PACK_KIND
from daemon.state.store import Store
from tests.support import FAST, TEST_KEY, FakeClock, request_file

HOUR = 3600.0
GROQ = {"kind": "openai_compatible", "base_url": "https://api.groq.com/openai/v1", "key_env": "GROQ_API_KEY"}
AZURE_URL = "https://res.openai.azure.com/openai/v1/"


def with_profiles(**tables: dict[str, Any]) -> dict[str, Any]:
    return {"providers": {name: parse_profile(name, table) for name, table in tables.items()}}


def test_an_azure_profile_ends_its_batches_even_when_the_top_level_says_nothing() -> None:
    settings = Settings(
        **with_profiles(azure={"kind": "azure", "base_url": AZURE_URL}, slow={"kind": "openai", "max_batch_age": 7200})
    )
    assert age_limit(settings, "azure") == 30 * HOUR  # Azure never expires a job: 24 h + 6 h
    assert age_limit(settings, "slow") == 2 * HOUR
    assert age_limit(settings, "default") == 30 * HOUR


def test_the_top_level_max_batch_age_rules_where_the_profile_sets_none() -> None:
    settings = Settings(
        max_batch_age=60.0, **with_profiles(azure={"kind": "azure", "base_url": AZURE_URL, "max_batch_age": 90})
    )
    assert age_limit(settings, "default") == 60.0
    assert age_limit(settings, "azure") == 90.0


def test_a_profile_with_a_longer_window_gets_a_longer_age_limit() -> None:
    groq = {
        "kind": "openai_compatible",
        "base_url": "https://api.groq.com/openai/v1",
        "key_env": "GROQ_API_KEY",
        "completion_windows": ["24h", "7d"],
        "completion_window": "7d",
    }
    settings = Settings(**with_profiles(groq=groq))
    assert age_limit(settings, "groq") == 7 * 24 * HOUR + 6 * HOUR


def test_an_input_is_split_by_the_smaller_of_the_top_level_and_its_profiles_limits(tmp_path: Path) -> None:
    small = {**GROQ, "max_requests_per_batch": 2, "max_bytes_per_batch": 5_000_000}
    settings = Settings(max_bytes_per_batch=4_000_000, **with_profiles(groq=small))
    groq, default = batch_limits(settings, "groq"), batch_limits(settings, "default")
    assert (groq.max_requests, groq.max_bytes) == (2, 4_000_000)
    assert (default.max_requests, default.max_bytes) == (settings.max_requests_per_batch, 4_000_000)
    source = tmp_path / "in.jsonl"
    source.write_text(request_file(5))
    with source.open("rb") as fh:
        split = split_lines(fh, tmp_path / "parts", groq)
    assert [part.request_count for part in split.parts] == [2, 2, 1]


def test_the_compatible_kind_splits_at_its_own_smaller_file_limit() -> None:
    settings = Settings(**with_profiles(groq=GROQ))
    assert batch_limits(settings, "groq").max_bytes == 100_000_000 < batch_limits(settings).max_bytes


def test_an_upload_uses_the_profiles_file_purpose_and_is_found_by_it(tmp_path: Path) -> None:
    emulator_settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator")  # type: ignore[arg-type]
    with EmulatorServer(emulator_settings) as emulator:
        profile = replace(openai_default_profile(emulator.base_url), file_purpose="user_data")
        remote = OpenAIService.for_profile(profile, KeySource("test key", value=TEST_KEY), 10.0)
        source = tmp_path / "part.jsonl"
        source.write_text(request_file(2))
        try:
            file_id = remote.upload(source, "batchd-part.jsonl")
            found = remote.find_file("batchd-part.jsonl", 0.0)
        finally:
            remote.close()
        assert [(f["id"], f["purpose"]) for f in emulator.files()] == [(file_id, "user_data")]
        assert found == file_id


def test_small_inputs_are_packed_within_their_profiles_limits(tmp_path: Path) -> None:
    """Three inputs of two requests each: on the default profile one pack of six; on a profile
    taking three requests a batch, no two fit together, so each goes alone."""
    settings = Settings(root=tmp_path, **with_profiles(groq={**GROQ, "max_requests_per_batch": 3}))
    folders.prepare(settings)
    clock = FakeClock()
    store = Store(settings.state / folders.DB_NAME)
    try:
        intake = Intake(settings.pending, settings.state, store, 0.0, 0.0, clock, profiles={"default", "groq"})
        for relative in ("a.jsonl", "b.jsonl", "c.jsonl", "groq/a.jsonl", "groq/b.jsonl", "groq/c.jsonl"):
            (settings.pending / relative).parent.mkdir(exist_ok=True)
            (settings.pending / relative).write_text(request_file(2))
        intake.ready_files()
        clock.advance(1.0)
        jobs = intake.claim_all(intake.ready_files())
        prepare_jobs(settings, store, [store.job(j.id) for j in jobs])
        Packer(settings, store, batch_limits(settings), lambda: None).run()
        packs = [(j.profile, j.request_count) for j in store.jobs() if j.kind == PACK_KIND]
    finally:
        store.close()
    assert packs == [("default", 6)]


@pytest.mark.parametrize("kind", ["openai", "azure"])
def test_a_window_the_kind_does_not_take_is_refused_at_start(kind: str) -> None:
    table = {"kind": kind, "base_url": AZURE_URL, "completion_windows": ["24h", "7d"], "completion_window": "7d"}
    with pytest.raises(ConfigError, match=rf"completion_window '7d': kind {kind} takes only \['24h'\]; leave it out"):
        parse_profile("week", table)
    assert parse_profile("week", {**table, "completion_window": "24h"}).completion_window == "24h"


def test_split_by_model_is_the_profiles_own_where_it_says_so_and_the_top_levels_elsewhere() -> None:
    settings = Settings(
        split_by_model=True, **with_profiles(azure={"kind": "azure", "base_url": AZURE_URL, "split_by_model": False})
    )
    assert settings.splits_by_model("default") and not settings.splits_by_model("azure")
    assert batch_limits(settings).split_models and not batch_limits(settings, "azure").split_models
    assert not Settings().splits_by_model("default")
