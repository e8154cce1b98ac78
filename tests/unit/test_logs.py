"""Logs carry no request content and no secret, whatever the format, and no raw control characters."""

from __future__ import annotations

import io
import json

import pytest

from daemon.logs import configure, get_logger
from daemon.service.credentials import KeySource

PRIVATE = "PRIVATE-PROMPT-TEXT"
# Shaped like neither an OpenAI key nor a bearer token: only the remembered value can mask it.
AZURE_STYLE_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


def _fail_with_content_in_locals() -> None:
    request_line = '{"custom_id": "c1", "body": {"messages": "' + PRIVATE + '"}}'
    raise ValueError(f"line could not be read ({len(request_line)} bytes)")


def _log_failure(fmt: str) -> str:
    out = io.StringIO()
    configure("info", fmt, stream=out)
    try:
        _fail_with_content_in_locals()
    except ValueError:
        get_logger("test").exception("step_failed", job_id="j1")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_show_no_local_variables(fmt: str) -> None:
    text = _log_failure(fmt)
    assert "step_failed" in text and "ValueError" in text and "line could not be read" in text
    assert PRIVATE not in text


def test_json_traceback_is_data_without_locals() -> None:
    event = json.loads(_log_failure("json").strip().splitlines()[-1])
    frames = event["exception"][0]["frames"]
    assert frames and all("locals" not in frame or not frame["locals"] for frame in frames)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secrets_read_by_batchd_are_masked_by_value_wherever_they_appear(fmt: str) -> None:
    key = KeySource("test key", value=AZURE_STYLE_KEY).read()
    secret = KeySource("test secret", value="whsec_c2VjcmV0LXZhbHVlLWZvci10ZXN0cw==", what="webhook secret").read()
    out = io.StringIO()
    configure("info", fmt, stream=out)
    log = get_logger("test")
    log.warning("request_refused", headers={"api-key": key, "nested": [f"secret={secret}"]}, error=f"bad key {key}")
    try:
        raise RuntimeError(f"the service echoed {key}")
    except RuntimeError:
        log.exception("call_failed")
    text = out.getvalue()
    assert "request_refused" in text and "call_failed" in text and "[redacted]" in text
    assert AZURE_STYLE_KEY not in text
    assert "c2VjcmV0LXZhbHVlLWZvci10ZXN0cw" not in text


def test_console_escapes_control_characters_in_names() -> None:
    out = io.StringIO()
    configure("info", "console", stream=out)
    get_logger("test").info("input_claimed", file="evil\x1b[31mRED\x07.jsonl")
    text = out.getvalue()
    assert "\x1b[31mRED" not in text and "\x07" not in text
    assert "evil\\x1b[31mRED\\x07.jsonl" in text
