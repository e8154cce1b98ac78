"""Terminal outcomes other than plain success, driven by a manual clock (no waiting).

STEPPED timing: validating, in_progress, finalizing and cancelling each last 1 s of fake time.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from daemon.emulator import EmulatorServer
from tests.support import FakeClock
from tests.unit.emulator.conftest import STEPPED, ServerFactory, make_client
from tests.unit.emulator.helpers import download_lines, jsonl, request_lines, run_to_end, submit, upload

BATCH_EXPIRED = "This request could not be executed before the completion window expired."


def counts(batch: openai.types.Batch) -> tuple[int, int, int]:
    assert batch.request_counts is not None
    return batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed


def test_statuses_and_progress_follow_the_clock(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    batch = submit(manual_client, tmp_path, request_lines(10))
    assert counts(batch) == (0, 0, 0)
    clock.advance(1.0)
    assert manual_client.batches.retrieve(batch.id).status == "in_progress"
    clock.advance(0.55)
    halfway = manual_client.batches.retrieve(batch.id)
    assert counts(halfway) == (10, 5, 0)
    assert halfway.output_file_id is None
    clock.advance(0.5)
    assert manual_client.batches.retrieve(batch.id).status == "finalizing"
    clock.advance(1.0)
    done = manual_client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.in_progress_at == batch.created_at + 1
    assert done.completed_at == batch.created_at + 3


def test_expire_model_gives_partial_output(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    batch = submit(manual_client, tmp_path, request_lines(10, model="gpt-expire-test"))
    done = run_to_end(manual_client, clock, batch.id)
    assert done.status == "expired"
    assert done.expired_at is not None
    assert done.finalizing_at is None
    output = download_lines(manual_client, done.output_file_id)
    errors = download_lines(manual_client, done.error_file_id)
    assert len(output) == 5
    assert len(errors) == 5
    assert counts(done) == (10, 5, 0)
    for line in errors:
        assert line["response"] is None
        assert line["error"] == {"code": "batch_expired", "message": BATCH_EXPIRED}
    every_id = sorted(line["custom_id"] for line in output + errors)
    assert every_id == sorted(f"req-{i}" for i in range(10))


def test_cancel_mid_progress_keeps_finished_requests(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    batch = submit(manual_client, tmp_path, request_lines(10))
    clock.advance(1.3)  # 0.3 s into in_progress: 3 of 10 done
    cancelling = manual_client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert cancelling.output_file_id is None
    assert cancelling.error_file_id is None
    assert manual_client.batches.cancel(batch.id).status == "cancelling"  # repeated cancel is harmless
    clock.advance(1.0)
    done = manual_client.batches.retrieve(batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert counts(done) == (10, 3, 0)
    output = download_lines(manual_client, done.output_file_id)
    errors = download_lines(manual_client, done.error_file_id)
    assert len(output) == 3
    assert len(errors) == 7
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert all(line["response"] is None for line in errors)


def test_cancel_while_validating_has_no_files(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    batch = submit(manual_client, tmp_path, request_lines(4))
    assert manual_client.batches.cancel(batch.id).status == "cancelling"
    done = run_to_end(manual_client, clock, batch.id)
    assert done.status == "cancelled"
    assert done.output_file_id is None
    assert done.error_file_id is None
    assert counts(done) == (0, 0, 0)


def test_cancel_of_a_terminal_batch_is_a_conflict(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    batch = submit(manual_client, tmp_path, request_lines(2))
    run_to_end(manual_client, clock, batch.id)
    with pytest.raises(openai.ConflictError) as caught:
        manual_client.batches.cancel(batch.id)
    assert "completed" in caught.value.message


def test_fail_validation_model(manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path) -> None:
    batch = submit(manual_client, tmp_path, request_lines(3, model="fail-validation"))
    clock.advance(1.0)
    failed = manual_client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert failed.errors is not None
    assert failed.errors.data
    assert failed.errors.object == "list"
    assert failed.errors.data[0].line == 1
    assert failed.output_file_id is None
    assert failed.error_file_id is None


def test_invalid_lines_are_reported_with_line_numbers(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    good = jsonl(request_lines(1))
    wrong_url = jsonl([{**request_lines(1, prefix="x")[0], "url": "/v1/embeddings"}])
    uploaded = upload(manual_client, tmp_path / "bad.jsonl", good + b"{not json\n" + wrong_url + good)
    batch = manual_client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = run_to_end(manual_client, clock, batch.id)
    assert failed.status == "failed"
    assert failed.errors is not None
    assert failed.errors.data is not None
    found = [(error.code, error.line) for error in failed.errors.data]
    assert found == [("invalid_json_line", 2), ("url_mismatch", 3), ("duplicate_custom_id", 4)]
    assert failed.errors.data[0].message == "This line is not parseable as valid JSON."


def test_fail_all_model_completes_without_output(
    manual_client: openai.OpenAI, clock: FakeClock, tmp_path: Path
) -> None:
    done = run_to_end(manual_client, clock, submit(manual_client, tmp_path, request_lines(4, model="fail-all")).id)
    assert done.status == "completed"
    assert done.output_file_id is None
    assert counts(done) == (4, 0, 4)
    errors = download_lines(manual_client, done.error_file_id)
    assert len(errors) == 4
    assert all(line["error"] is None and line["response"]["status_code"] == 400 for line in errors)
    assert all("error" in line["response"]["body"] for line in errors)


def test_request_error_rate_writes_http_error_lines(
    make_server: ServerFactory, clock: FakeClock, tmp_path: Path
) -> None:
    server = make_server(clock=clock, request_error_rate=0.3, **STEPPED)
    with make_client(server) as client:
        done = run_to_end(client, clock, submit(client, tmp_path, request_lines(40)).id)
        output = download_lines(client, done.output_file_id)
        errors = download_lines(client, done.error_file_id)
    assert done.status == "completed"
    assert 0 < len(errors) < 40
    assert len(output) + len(errors) == 40
    assert counts(done) == (40, len(output), len(errors))
    for line in errors:
        assert line["error"] is None
        assert 400 <= line["response"]["status_code"] < 500
        assert line["response"]["body"]["error"]["message"]


def test_token_limit_fails_the_batch_that_overflows(
    make_server: ServerFactory, clock: FakeClock, tmp_path: Path
) -> None:
    server: EmulatorServer = make_server(clock=clock, token_limit=1_000, **STEPPED)
    with make_client(server) as client:
        first = submit(client, tmp_path, request_lines(40, model="gpt-queue"))  # ~25 tokens a request
        clock.advance(0.5)
        second = submit(client, tmp_path, request_lines(40, model="gpt-queue"))
        other_model = submit(client, tmp_path, request_lines(5, model="gpt-other"))
        clock.advance(1.0)
        states = {b.id: client.batches.retrieve(b.id) for b in (first, second, other_model)}
    assert states[first.id].status == "in_progress"
    assert states[other_model.id].status == "in_progress"
    rejected = states[second.id]
    assert rejected.status == "failed"
    assert rejected.errors is not None
    assert rejected.errors.data
    error = rejected.errors.data[0]
    assert error.code == "token_limit_exceeded"
    assert error.line is None
    assert error.param is None
    assert error.message == (
        "Enqueued token limit reached for gpt-queue in organization org-emulator. Limit: 1,000 enqueued tokens. "
        "Please try again once some in_progress batches have been completed."
    )
