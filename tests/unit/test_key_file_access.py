"""A key file that is there but not readable by batchd's user (the image's uid 10001 and a secret file
owned by the host's user, a systemd unit's user) says who must be able to read it, not only
'Permission denied'."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import CredentialError
from daemon.service.credentials import find_key_source


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_names_the_user_who_must_read_it(tmp_path: Path) -> None:
    key = tmp_path / "openai-api-key"
    key.write_text("sk-secret-value\n")
    key.chmod(0)
    with pytest.raises(CredentialError) as raised:
        find_key_source({"OPENAI_API_KEY_FILE": str(key)})
    message = str(raised.value)
    assert "Permission denied" in message and f"uid {os.getuid()}" in message and f"chown {os.getuid()}" in message
    assert "OPENAI_API_KEY_FILE= (empty)" in message and "sk-secret" not in message
