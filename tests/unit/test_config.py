"""Settings: precedence, conversion, and errors that say what to change."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError


def test_defaults_follow_the_seed_script(tmp_path: Path) -> None:
    s = load_settings(environ={}, overrides={"root": tmp_path})
    assert (s.pending_dir, s.uploaded_dir, s.results_dir) == ("pending_upload", "uploaded_files", "batch_results")
    assert s.poll_interval == 60.0
    assert s.pending == tmp_path / "pending_upload"


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text('poll_interval = 30\nmin_file_age = 2\nwatch_mode = "polling"\n[metadata]\nteam = "nlp"\n')
    env = {"BATCHD_POLL_INTERVAL": "20", "BATCHD_MIN_FILE_AGE": "3"}
    s = load_settings(toml, environ=env, overrides={"poll_interval": 10.0})
    assert s.poll_interval == 10.0  # flag beats env beats file
    assert s.min_file_age == 3.0  # env beats file
    assert s.watch_mode == "polling"  # file beats default
    assert dict(s.metadata) == {"team": "nlp"}


def test_openai_base_url_is_honoured(tmp_path: Path) -> None:
    s = load_settings(environ={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, overrides={"root": tmp_path})
    assert s.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"BATCHD_POLL_INTERVAL": "soon"}, "poll_interval"),
        ({"BATCHD_POLL_INTERVAL": "0"}, "poll_interval must be greater than 0"),
        ({"BATCHD_WATCH_MODE": "magic"}, "watch_mode must be one of auto, inotify, polling"),
        ({"BATCHD_COMPLETION_WINDOW": "48h"}, "completion_window"),
        ({"BATCHD_PENDING_DIR": "../x"}, "pending_dir must be a plain folder name"),
        ({"BATCHD_RESULTS_DIR": "pending_upload"}, "must all differ"),
        ({"BATCHD_NO_SUCH": "1"}, "unknown setting 'no_such'"),
        ({"BATCHD_MAX_REQUESTS_PER_BATCH": "60000"}, "max_requests_per_batch must be between 1 and"),
        ({"BATCHD_MAX_TOKENS_PER_BATCH": "0"}, "max_tokens_per_batch must be 1 or more .* or unset"),
        ({"BATCHD_MAX_TOKENS_PER_BATCH": "-5"}, r"max_tokens_per_batch must be 1 or more .*\(got -5\)"),
        ({"BATCHD_MAX_TOKENS_PER_BATCH": "2M"}, "setting 'max_tokens_per_batch'"),
        ({"BATCHD_METADATA": "batchd_job=x"}, "must be 1-64 characters and not start with batchd_"),
        ({"BATCHD_VERIFY_DOWNLOADS_FOR": "-1"}, r"verify_downloads_for must be 0 .* or more seconds \(got -1.0\)"),
        ({"BATCHD_BIG_INPUT_BYTES": "0"}, r"big_input_bytes must be 1 or more bytes, e.g. 64000000 \(got 0\)"),
        ({"BATCHD_BIG_INPUT_WORKERS": "0"}, r"big_input_workers must be between 1 and 64 \(got 0\)"),
    ],
)
def test_bad_settings_say_what_to_change(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(environ=env, overrides={"root": tmp_path})


def test_api_key_in_config_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text('api_key = "sk-nope"\n')
    with pytest.raises(ConfigError, match="unknown setting 'api_key'"):
        load_settings(toml, environ={})


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_token_budget_is_off_by_default_and_read_from_file_and_env(tmp_path: Path) -> None:
    assert load_settings(environ={}, overrides={"root": tmp_path}).max_tokens_per_batch is None
    toml = tmp_path / "b.toml"
    toml.write_text("max_tokens_per_batch = 2000000\n")
    assert load_settings(toml, environ={}).max_tokens_per_batch == 2_000_000
    env = {"BATCHD_MAX_TOKENS_PER_BATCH": "90000"}
    assert load_settings(toml, environ=env).max_tokens_per_batch == 90_000  # env beats file
    assert load_settings(toml, environ={"BATCHD_MAX_TOKENS_PER_BATCH": ""}).max_tokens_per_batch is None


def test_bad_token_budget_in_the_file_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text("max_tokens_per_batch = 0\n")
    with pytest.raises(ConfigError, match="max_tokens_per_batch must be 1 or more"):
        load_settings(toml, environ={})


def test_example_config_documents_every_setting() -> None:
    text = (Path(__file__).parents[2] / "config" / "batchd.toml").read_text()
    missing = [
        f.name for f in dataclasses.fields(Settings) if not re.search(rf"^(# )?\[?{f.name}\b", text, re.MULTILINE)
    ]
    assert missing == []
