"""Secrets are masked by shape and, once read, by value; short values are never masked by value."""

from __future__ import annotations

from daemon.redaction import MASK, redact, redact_value, remember_secret


def test_shapes_are_masked_before_any_secret_is_read() -> None:
    text = redact("key sk-proj-abcdef123456 header Bearer eyJhbGciOi.x-y and whsec_YWJjZGVmZ2g=")
    assert text == f"key {MASK} header {MASK} and {MASK}"


def test_a_remembered_value_is_masked_inside_nested_values() -> None:
    remember_secret("proxy-token-7f3e9a")
    masked = redact_value({"a": ["x proxy-token-7f3e9a y", ("proxy-token-7f3e9a",)], "n": 3})
    assert masked == {"a": [f"x {MASK} y", [MASK]], "n": 3}


def test_short_values_are_not_remembered() -> None:
    remember_secret("abc")
    assert redact("abcdef abc") == "abcdef abc"
