"""The emulator's file limit: a resource keeps only so many input files (Azure: 500), then refuses uploads."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.unit.emulator.conftest import ServerFactory, make_client
from tests.unit.emulator.helpers import jsonl, request_lines, upload


def test_an_upload_past_the_limit_is_refused_until_a_file_is_deleted(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(file_limit=2)
    with make_client(server) as client:
        first = upload(client, tmp_path / "a.jsonl", jsonl(request_lines(1))).id
        upload(client, tmp_path / "b.jsonl", jsonl(request_lines(1)))
        with pytest.raises(openai.BadRequestError) as refused:
            upload(client, tmp_path / "c.jsonl", jsonl(request_lines(1)))
        assert refused.value.code == "quota_exceeded"
        assert "maximum number of files (2)" in str(refused.value)
        client.files.delete(first)
        upload(client, tmp_path / "c.jsonl", jsonl(request_lines(1)))  # room again
    statuses = [c.status for c in server.calls.entries() if c.method == "POST" and c.route == "/v1/files"]
    assert statuses == [200, 200, 400, 200]


def test_no_file_limit_by_default(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server()
    with make_client(server) as client:
        for index in range(5):
            upload(client, tmp_path / f"{index}.jsonl", jsonl(request_lines(1)))


def test_a_file_limit_below_one_is_refused(make_server: ServerFactory) -> None:
    with pytest.raises(ValueError, match="file_limit"):
        make_server(file_limit=0)
