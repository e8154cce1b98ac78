"""The on_job_done settings: a command as an argument list, an http(s) URL, known endings only."""

from __future__ import annotations

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError


def test_the_command_is_an_argument_list_also_from_the_environment() -> None:
    settings = load_settings(None, environ={"BATCHD_ON_JOB_DONE_COMMAND": "/usr/bin/tell --to 'ops team'"})
    assert settings.on_job_done_command == ("/usr/bin/tell", "--to", "ops team")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_ON_JOB_DONE_EVENTS": "done,finished"}, "on_job_done_events may hold only done, failed"),
        ({"BATCHD_ON_JOB_DONE_URL": "ftp://example.com/x"}, "must be an http:// or https:// URL"),
        ({"BATCHD_ON_JOB_DONE_COMMAND": "''"}, "must start with the program to run"),
    ],
)
def test_a_wrong_value_says_what_to_change(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, environ=environ)


def test_the_secret_variables_are_not_settings() -> None:
    environ = {"BATCHD_NOTIFY_SECRET": "s", "BATCHD_NOTIFY_SECRET_FILE": "/nowhere"}
    assert load_settings(None, environ=environ).on_job_done_url is None
