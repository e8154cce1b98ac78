"""The webhook receiver: deliveries signed here, independently of the SDK, per Standard Webhooks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError, CredentialError
from daemon.service.credentials import KeySource, find_webhook_secret
from daemon.service.webhooks import SeenIds, check_secret

SECRET = "whsec_" + base64.b64encode(b"batchd-test-signing-key-32-bytes").decode()


def test_seen_ids_are_bounded_in_count_and_age() -> None:
    seen = SeenIds(window=10.0, limit=3)
    assert [seen.add(i, 100.0) for i in ("a", "b", "a")] == [True, True, False]
    assert seen.add("c", 101.0) and seen.add("d", 101.0)  # "a" is pushed out by the count limit
    assert seen.add("a", 102.0)
    assert seen.add("b", 200.0)  # and everything by age


# Through the real daemon -------------------------------------------------------------------------


# Where the secret comes from -------------------------------------------------------------------


def test_secret_sources_in_order(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "openai-webhook-secret").write_text("from-systemd\n")
    (tmp_path / "secret").write_text("from-file\n")
    env = {"OPENAI_WEBHOOK_SECRET": "from-env", "OPENAI_WEBHOOK_SECRET_FILE": str(tmp_path / "secret")}
    assert find_webhook_secret({}) is None
    assert find_webhook_secret({"OPENAI_WEBHOOK_SECRET": "from-env"}).read() == "from-env"  # type: ignore[union-attr]
    assert find_webhook_secret(env).read() == "from-file"  # type: ignore[union-attr]
    source = find_webhook_secret({**env, "CREDENTIALS_DIRECTORY": str(creds)})
    assert source is not None and source.read() == "from-systemd"
    assert "from-" not in repr(source)
    with pytest.raises(CredentialError, match="webhook signing secret"):
        find_webhook_secret({"OPENAI_WEBHOOK_SECRET_FILE": str(tmp_path / "missing")})


def test_a_mangled_whsec_secret_is_refused_at_start() -> None:
    with pytest.raises(CredentialError, match="not base64"):
        check_secret(KeySource("env", value="whsec_***not-base64***"))
    check_secret(KeySource("env", value=SECRET))
    check_secret(KeySource("env", value="a raw secret without the prefix"))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BATCHD_WEBHOOK_PORT": "65536"}, "webhook_port must be between 1 and 65535"),
        ({"BATCHD_WEBHOOK_ADDRESS": "example.org"}, "webhook_address must be an IP address"),
    ],
)
def test_bad_webhook_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)
