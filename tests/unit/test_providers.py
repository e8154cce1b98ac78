"""Provider profiles: parsed from [providers.NAME] tables, validated, and the default one always there."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError, CredentialError
from daemon.providers import KEY_LOOKUP_KEYS, PROFILE_KEYS, WEBHOOK_LOOKUP_KEYS, Profile, entra_available
from daemon.service.credentials import find_profile_key

EXAMPLE = Path(__file__).parents[2] / "config" / "batchd.toml"
AZURE = 'kind = "azure"\nbase_url = "https://res.openai.azure.com/openai/v1/"\n'


def loaded(tmp_path: Path, text: str, **environ: str) -> Settings:
    config = tmp_path / "batchd.toml"
    config.write_text(text, encoding="utf-8")
    return load_settings(config, environ=environ)


def test_without_providers_the_default_profile_is_openai_from_base_url(tmp_path: Path) -> None:
    settings = loaded(tmp_path, "", OPENAI_BASE_URL="http://127.0.0.1:1/v1")
    profile = settings.providers["default"]
    assert list(settings.providers) == ["default"]
    assert (profile.kind, profile.base_url, profile.auth) == ("openai", "http://127.0.0.1:1/v1", "bearer")
    assert profile.supports_metadata and profile.completion_window == "24h"
    assert Settings(base_url="http://x/v1").default_profile.base_url == "http://x/v1"


def test_an_azure_profile_gets_azure_defaults(tmp_path: Path) -> None:
    profile = loaded(tmp_path, "[providers.default]\n" + AZURE).default_profile
    assert (profile.kind, profile.auth, profile.api_version) == ("azure", "api-key", None)
    assert profile.endpoints == {"/v1/chat/completions", "/v1/responses"}
    assert profile.min_poll_interval == 60.0 and profile.max_files == 500
    assert profile.batch_age_limit == 30 * 3600.0  # Azure never expires a job: batchd ends it
    assert profile.keys.env == "AZURE_OPENAI_API_KEY"


def test_a_compatible_profile_assumes_no_metadata_list_or_expiry(tmp_path: Path) -> None:
    table = '[providers.groq]\nkind = "openai_compatible"\nbase_url = "https://g/v1"\nkey_env = "GROQ_KEY"\n'
    table += 'completion_windows = ["24h", "7d"]\n'
    settings = loaded(tmp_path, table)
    groq = settings.providers["groq"]
    assert not (groq.supports_metadata or groq.supports_list or groq.supports_expiry) and groq.supports_cancel
    assert groq.batch_age_limit == 7 * 86400.0 + 6 * 3600.0
    assert settings.default_profile.kind == "openai"  # still there beside a named one


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (AZURE + 'api_key = "sk-123"\n', r"\[providers.default\] api_key: a key must never be in the config file"),
        (AZURE + "colour = 1\n", r"\[providers.default\]: unknown key 'colour'"),
        ('kind = "gemini"\n', r"kind must be one of openai, azure, openai_compatible, anthropic \(got 'gemini'\)"),
        ('kind = "azure"\n', r"\[providers.default\] base_url: a profile of kind azure needs"),
        (AZURE.replace("https", "ftp"), "base_url must start with https://"),
        ('kind = "openai_compatible"\nbase_url = "http://l/v1"\n', "needs a key source: set key_env"),
        (AZURE + 'auth = "basic"\n', r"auth must be one of bearer, api-key, entra, x-api-key \(got 'basic'\)"),
        ('auth = "entra"\n', 'entra .* works only with kind = "azure"'),
        ('api_version = "2024-10-21"\n', "only Azure OpenAI takes an api-version"),
        (AZURE + 'api_version = "latest"\n', "api_version must look like 2024-10-21"),
        (AZURE + 'completion_window = "48h"\n', r"completion_window '48h' must be one of completion_windows"),
        (AZURE + 'completion_windows = ["1w"]\n', "completion_windows: a completion window is hours or days"),
        (AZURE + 'endpoints = ["chat"]\n', "endpoints are paths such as /v1/chat/completions"),
        (AZURE + "endpoints = []\n", "endpoints: expected a non-empty list"),
        (AZURE + 'max_requests_per_batch = "many"\n', "max_requests_per_batch: expected a whole number"),
        (AZURE + "max_bytes_per_batch = 0\n", "max_bytes_per_batch must be 1 or more"),
        (AZURE + "max_files = 0\n", "max_files must be 1 or more"),
        (AZURE + "min_poll_interval = -1\n", "min_poll_interval must be 0 or more"),
        (AZURE + "max_batch_age = 0\n", "max_batch_age must be greater than 0"),
        (AZURE + 'supports_list = "no"\n', "supports_list: expected true or false"),
        (AZURE + 'key_env = ""\n', "key_env must be a non-empty name"),
        (AZURE + "webhook_secret_env = 5\n", "webhook_secret_env must be a non-empty name"),
    ],
)
def test_a_bad_profile_is_refused_naming_table_and_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        loaded(tmp_path, "[providers.default]\n" + table)


def test_a_profile_may_name_its_own_webhook_secret(tmp_path: Path) -> None:
    table = AZURE + 'webhook_secret_env = "AZ_HOOK"\nwebhook_secret_file_env = "AZ_HOOK_FILE"\n'
    profile = loaded(tmp_path, "[providers.azure]\n" + table).providers["azure"]
    assert profile.webhook_keys is not None and profile.webhook_keys.described() == "$AZ_HOOK or $AZ_HOOK_FILE"
    plain = loaded(tmp_path, "[providers.azure]\n" + AZURE).providers["azure"]
    assert plain.webhook_keys is None  # the default profile's secret serves it


def test_a_profile_name_must_be_usable_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[providers.My Azure\]: a profile name is 1-64 lower-case"):
        loaded(tmp_path, '[providers."My Azure"]\n' + AZURE)


def test_providers_cannot_come_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"only in the config file, as \[providers.NAME\] tables"):
        load_settings(environ={"BATCHD_PROVIDERS": "azure"})


@pytest.mark.skipif(entra_available(), reason="azure-identity is installed here")
def test_entra_without_azure_identity_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"entra needs the azure-identity package; .*batchd\[azure\]"):
        loaded(tmp_path, "[providers.default]\n" + AZURE + 'auth = "entra"\n')


def test_the_key_is_found_where_the_profile_says(tmp_path: Path) -> None:
    key_file = tmp_path / "azure.key"
    key_file.write_text("azure-secret\n", encoding="utf-8")
    profile = loaded(tmp_path, "[providers.default]\n" + AZURE).default_profile
    assert find_profile_key(profile, {"AZURE_OPENAI_API_KEY_FILE": str(key_file)}).read() == "azure-secret"
    named = loaded(tmp_path, "[providers.default]\n" + AZURE + 'key_env = "MY_AZURE_KEY"\n').default_profile
    assert find_profile_key(named, {"MY_AZURE_KEY": " k2 "}).read() == "k2"
    # Naming a source replaces the kind's lookup: the default variable is no longer read.
    with pytest.raises(CredentialError, match=r"no API key for provider profile default: set \$MY_AZURE_KEY"):
        find_profile_key(named, {"AZURE_OPENAI_API_KEY": "k1"})


def test_the_default_openai_profile_keeps_the_openai_key_lookup() -> None:
    assert find_profile_key(Settings().default_profile, {"OPENAI_API_KEY": "sk-1"}).read() == "sk-1"
    with pytest.raises(CredentialError, match="no OpenAI API key: set OPENAI_API_KEY"):
        find_profile_key(Settings().default_profile, {})


def test_every_profile_field_has_a_key_and_is_documented() -> None:
    fields = {f.name for f in dataclasses.fields(Profile)}
    assert fields == {*PROFILE_KEYS, "name", "kind", "keys", "webhook_keys"}
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        key
        for key in ("kind", *PROFILE_KEYS, *KEY_LOOKUP_KEYS, *WEBHOOK_LOOKUP_KEYS)
        if not re.search(rf"^# #? ?{key} =", text, re.M)
    ]
    assert missing == []


def test_the_documented_example_tables_parse(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    example = text[text.index("# [providers.default]") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines() if line.startswith("# "))
    settings = loaded(tmp_path, uncommented)
    assert (settings.providers["default"].kind, settings.providers["groq"].completion_windows) == (
        "azure",
        ("24h", "7d"),
    )


def test_a_model_map_is_read_and_a_chained_one_refused(tmp_path: Path) -> None:
    table = "[providers.default]\n" + AZURE + 'models = { "gpt-4o-mini" = "my-gpt4o-mini-batch" }\n'
    profile = loaded(tmp_path, table).default_profile
    assert profile.model_names == {"gpt-4o-mini": "my-gpt4o-mini-batch"}
    with pytest.raises(ConfigError, match=r"models: 'b' is both a name sent and a model renamed"):
        loaded(tmp_path, "[providers.default]\n" + AZURE + 'models = { a = "b", b = "c" }\n')
    with pytest.raises(ConfigError, match=r"models: each model needs a non-empty name"):
        loaded(tmp_path, "[providers.default]\n" + AZURE + 'models = { a = "" }\n')
    with pytest.raises(ConfigError, match=r"models: expected a table"):
        loaded(tmp_path, "[providers.default]\n" + AZURE + 'models = ["a"]\n')


def test_azure_accepts_line_urls_without_v1_openai_does_not() -> None:
    azure = dataclasses.replace(Settings().default_profile, kind="azure", endpoints=frozenset({"/v1/responses"}))
    assert azure.url_forms() == {"/v1/responses", "/responses"}
    assert Settings().default_profile.url_forms() == Settings().default_profile.endpoints
