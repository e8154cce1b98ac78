"""A job's own provider profile decides its batch age limit, completion window, split limits,
poll spacing and upload purpose; the top-level settings still rule where the profile is silent."""

from __future__ import annotations

from typing import Any

from daemon.config import Settings
from daemon.providers import parse_profile
from daemon.service.overdue_batches import age_limit

HOUR = 3600.0
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
