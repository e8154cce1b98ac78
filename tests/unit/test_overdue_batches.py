"""A batch still running past max_batch_age is cancelled and treated like an expired one."""

from __future__ import annotations

import re

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError


def test_max_batch_age_defaults_to_the_completion_window_plus_six_hours() -> None:
    assert load_settings(environ={}).batch_age_limit == 30 * 3600
    assert load_settings(environ={"BATCHD_MAX_BATCH_AGE": "90"}).batch_age_limit == 90


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_MAX_BATCH_AGE": "0"}, "max_batch_age must be greater than 0 seconds, or unset"),
        ({"BATCHD_MAX_BATCH_AGE": "soon"}, "setting 'max_batch_age'"),
        ({"BATCHD_LOST_BATCH_GRACE": "-1"}, "lost_batch_grace must be greater than 0 seconds"),
    ],
)
def test_bad_ending_settings_say_what_to_change(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=environ)
