"""The emulator refuses a bad body the way the service does: that line alone, a 400 in the error file."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.support import FakeClock
from tests.unit.emulator.helpers import download_lines, request_lines, run_to_end, submit


def test_a_body_the_endpoint_refuses_fails_alone_in_the_error_file(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    lines = request_lines(4)
    del lines[1]["body"]["messages"]
    lines[2]["body"]["stream"] = True
    done = run_to_end(manual_client, clock, submit(manual_client, tmp_path, lines).id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 2)
    assert sorted(line["custom_id"] for line in download_lines(manual_client, done.output_file_id)) == [
        "req-0",
        "req-3",
    ]
    errors = {line["custom_id"]: line["response"] for line in download_lines(manual_client, done.error_file_id)}
    assert sorted(errors) == ["req-1", "req-2"]
    assert {response["status_code"] for response in errors.values()} == {400}
    assert errors["req-1"]["body"]["error"]["message"] == "Missing required parameter: 'messages'."
    assert errors["req-2"]["body"]["error"]["param"] == "stream"


def test_an_embeddings_body_with_chat_fields_is_refused(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    lines = request_lines(2, endpoint="/v1/embeddings")
    lines[0]["body"]["messages"] = [{"role": "user", "content": "x"}]
    done = run_to_end(manual_client, clock, submit(manual_client, tmp_path, lines, endpoint="/v1/embeddings").id)
    (error,) = download_lines(manual_client, done.error_file_id)
    assert error["custom_id"] == "req-0"
    assert error["response"]["body"]["error"]["code"] == "unknown_parameter"
    assert [line["custom_id"] for line in download_lines(manual_client, done.output_file_id)] == ["req-1"]
