"""keep_state: an emulator started again on its data folder goes on with its files and batches (the
anthropic flavour: its Message Batches and their results)."""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest

from daemon.emulator import EmulatorServer, EmulatorSettings
from tests.support import FakeClock
from tests.unit.emulator.anthropic_helpers import anthropic_client, message_requests, results_by_id, wait_ended
from tests.unit.emulator.conftest import STEPPED, ServerFactory, make_client
from tests.unit.emulator.helpers import download_lines, request_lines, submit


def test_a_restarted_emulator_finishes_the_batches_it_had(
    make_server: ServerFactory, clock: FakeClock, tmp_path: Path
) -> None:
    kept = tmp_path / "kept"
    first = make_server(clock=clock, data_dir=kept, keep_state=True, **STEPPED)
    with make_client(first) as client:
        batch = submit(client, tmp_path, request_lines(3))
        clock.advance(1.5)
        assert client.batches.retrieve(batch.id).status == "in_progress"
    first.stop()  # Ctrl-C

    second = make_server(clock=clock, data_dir=kept, keep_state=True, **STEPPED)
    with make_client(second) as client:
        again = client.batches.retrieve(batch.id)
        assert again.status == "in_progress"
        assert again.input_file_id == batch.input_file_id
        assert [f.id for f in client.files.list()] == [batch.input_file_id]
        clock.advance(10.0)  # its timing goes on by the clock, as if the emulator had never stopped
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.request_counts is not None and done.request_counts.total == 3
        lines = download_lines(client, done.output_file_id)
        assert sorted(line["custom_id"] for line in lines) == ["req-0", "req-1", "req-2"]
        newer = submit(client, tmp_path, request_lines(1, prefix="new"))
        assert newer.id != batch.id
        assert [b.id for b in client.batches.list()] == [newer.id, batch.id]  # newest first, numbering goes on
    second.stop()

    third = make_server(clock=clock, data_dir=kept, keep_state=True, **STEPPED)
    with make_client(third) as client:  # a finished batch keeps its output file
        assert len(download_lines(client, client.batches.retrieve(batch.id).output_file_id)) == 3


def test_without_keep_state_nothing_is_kept(make_server: ServerFactory, tmp_path: Path) -> None:
    first = make_server(data_dir=tmp_path / "plain")
    with make_client(first) as client:
        submit(client, tmp_path, request_lines(1))
    first.stop()
    assert not (tmp_path / "plain" / "state.json").exists()


def test_keep_state_needs_a_folder() -> None:
    with pytest.raises(ValueError, match="keep_state needs a data_dir"):
        EmulatorSettings(keep_state=True)


def test_a_state_it_cannot_read_is_named_with_the_way_out(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"state.json cannot be read .*move the folder away"):
        EmulatorServer(EmulatorSettings(data_dir=kept, keep_state=True)).start()


ANTHROPIC = {"flavour": "anthropic", "in_progress_seconds": 10.0, "cancelling_seconds": 1.0, "expiry_seconds": 100.0}


def test_a_restarted_anthropic_emulator_ends_its_message_batches_and_serves_their_results(
    make_server: ServerFactory, clock: FakeClock, tmp_path: Path
) -> None:
    kept = tmp_path / "kept"
    first = make_server(clock=clock, data_dir=kept, keep_state=True, **ANTHROPIC)
    with anthropic_client(first) as sdk:
        running = sdk.messages.batches.create(requests=message_requests(3))
        errored = sdk.messages.batches.create(requests=message_requests(2, prefix="bad", text="fail-request"))
        cancelled = sdk.messages.batches.create(requests=message_requests(10, prefix="cut"))
        clock.advance(3.0)  # 3 of 10 have run when the cancel comes
        sdk.messages.batches.cancel(cancelled.id)
    first.stop()  # Ctrl-C

    second = make_server(clock=clock, data_dir=kept, keep_state=True, **ANTHROPIC)
    with anthropic_client(second) as sdk:
        again = sdk.messages.batches.retrieve(running.id)
        assert again.processing_status == "in_progress" and again.created_at == running.created_at
        clock.advance(10.0)  # its timing goes on by the clock, as if the emulator had never stopped
        assert wait_ended(sdk, running.id).request_counts.succeeded == 3
        assert sorted(results_by_id(sdk, running.id)) == ["req-0", "req-1", "req-2"]
        bad = results_by_id(sdk, errored.id)  # which requests fail was kept with the batch
        assert sorted(line.result.type for line in bad.values()) == ["errored", "errored"]
        cut = sdk.messages.batches.retrieve(cancelled.id)
        assert (cut.request_counts.succeeded, cut.request_counts.canceled) == (3, 7)
        newer = sdk.messages.batches.create(requests=message_requests(1, prefix="new"))
        listed = [batch.id for batch in sdk.messages.batches.list()]
        assert listed == [newer.id, cancelled.id, errored.id, running.id]  # newest first, numbering goes on
        sdk.messages.batches.delete(errored.id)
    second.stop()

    third = make_server(clock=clock, data_dir=kept, keep_state=True, **ANTHROPIC)
    with anthropic_client(third) as sdk:  # an ended batch keeps its results; a deleted one stays deleted
        assert sorted(results_by_id(sdk, running.id)) == ["req-0", "req-1", "req-2"]
        assert [batch.id for batch in sdk.messages.batches.list()] == [newer.id, cancelled.id, running.id]


def test_an_anthropic_emulator_without_keep_state_forgets_its_batches(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    first = make_server(data_dir=tmp_path / "plain", **ANTHROPIC)
    with anthropic_client(first) as sdk:
        created = sdk.messages.batches.create(requests=message_requests(1))
    first.stop()
    second = make_server(data_dir=tmp_path / "plain", **ANTHROPIC)
    with anthropic_client(second) as sdk, pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(created.id)
    assert not (tmp_path / "plain" / "message_batches.json").exists()
