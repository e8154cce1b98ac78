"""Remote hygiene: once results are written, the job's files leave the service, whatever fails."""

from __future__ import annotations

from collections.abc import Callable

from daemon.emulator import EmulatorServer
from daemon.service.remote_cleanup import MAX_TRIES, Hygiene, remote_files_of
from tests.support import Harness, request_file, wait_until

DELETE = ("DELETE", "/v1/files/{file_id}")


def _remote_states(harness: Harness, name: str) -> dict[str, str]:
    assert harness.store is not None
    job = harness.job(name)
    assert job is not None
    return {f.role + ":" + f.file_id: f.state for f in harness.store.remote_files(job.id)}


def test_files_are_deleted_after_results_are_written(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(delete_remote_files=True).start()
    emulator = harness.server
    harness.drop("clean.jsonl", request_file(5))
    harness.wait_job("clean.jsonl")
    assert len(harness.results("clean.jsonl")) == 5  # results first
    wait_until(lambda: not emulator.files(), what="every file of the job to be deleted on the service")
    roles = sorted(key.split(":")[0] for key in _remote_states(harness, "clean.jsonl"))
    assert roles == ["input", "output"]
    wait_until(lambda: set(_remote_states(harness, "clean.jsonl").values()) == {"deleted"}, what="deletions recorded")
    # The emulator logs a call after answering it: wait for the log, then check nothing more came.
    wait_until(lambda: emulator.calls.count(*DELETE) == 2, what="each file deleted once")
    harness.stop()
    assert emulator.calls.count(*DELETE) == 2


def test_off_keeps_the_files(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("kept.jsonl", request_file(2))
    harness.wait_job("kept.jsonl")
    assert len(emulator.files()) == 2
    assert emulator.calls.count(*DELETE) == 0
    assert _remote_states(harness, "kept.jsonl") == {}


def test_expired_job_deletes_every_attempts_files(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(delete_remote_files=True).start()
    harness.drop("exp.jsonl", request_file(8, model="gpt-expire"))
    harness.wait_job("exp.jsonl")
    wait_until(lambda: not harness.server.files(), what="the files of every attempt to be deleted")
    assert len(harness.server.batches()) > 1
    files = len(_remote_states(harness, "exp.jsonl"))
    wait_until(lambda: harness.server.calls.count(*DELETE) == files, what="one deletion per file")


def test_failed_deletion_is_retried_and_never_blocks_the_job(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(delete_remote_files=True).start()
    emulator = harness.server
    emulator.faults.add_rule(action="status", method="DELETE", path_prefix="/v1/files", status=503, count=1)
    emulator.faults.add_rule(action="drop", method="DELETE", path_prefix="/v1/files", count=1)
    harness.drop("flaky.jsonl", request_file(3))
    harness.wait_job("flaky.jsonl")  # the job ends at once, whatever the deletions do
    wait_until(lambda: not emulator.files(), timeout=20, what="the deletions to succeed on a later try")
    wait_until(lambda: emulator.calls.count(*DELETE) >= 4, what="two failed and two good deletions")


def test_already_gone_counts_as_deleted(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory(delete_remote_files=True).start()
    emulator = harness.server
    # A deletion whose answer is lost has happened: the next try finds it gone (404), which is fine.
    emulator.faults.add_rule(
        action="status", method="DELETE", path_prefix="/v1/files", status=500, after_processing=True
    )
    harness.drop("lost.jsonl", request_file(2))
    harness.wait_job("lost.jsonl")
    wait_until(lambda: set(_remote_states(harness, "lost.jsonl").values()) == {"deleted"}, timeout=20)
    assert not emulator.files()
    wait_until(lambda: emulator.calls.count(*DELETE) == 3, what="two files, one of them asked twice")
    harness.stop()
    assert emulator.calls.count(*DELETE) == 3


def test_a_stop_between_results_and_deletion_deletes_after_restart(
    harness_factory: Callable[..., Harness], emulator: EmulatorServer
) -> None:
    first = harness_factory(delete_remote_files=True).start()
    emulator.faults.add_rule(action="status", method="DELETE", path_prefix="/v1/files", status=503, count=1000)
    first.drop("later.jsonl", request_file(3))
    first.wait_job("later.jsonl")
    wait_until(lambda: emulator.calls.count(*DELETE) >= 1, what="a first failed deletion")
    first.stop()
    assert len(emulator.files()) == 2
    emulator.faults.clear()
    second = harness_factory(delete_remote_files=True).start()
    wait_until(lambda: not emulator.files(), timeout=20, what="the recorded deletions to be done after the restart")
    wait_until(lambda: set(_remote_states(second, "later.jsonl").values()) == {"deleted"}, what="deletions recorded")


def test_gives_up_after_a_bound(harness: Harness, emulator: EmulatorServer) -> None:
    harness.drop("stubborn.jsonl", request_file(1))
    job = harness.wait_job("stubborn.jsonl")
    assert harness.store is not None and harness.remote is not None and harness.engine is not None
    store = harness.store
    store.add_remote_files(job.id, remote_files_of(store.parts(job.id)), 0.0)
    emulator.faults.add_rule(action="status", method="DELETE", path_prefix="/v1/files", status=400, count=1)
    for item in store.remote_files(job.id):  # one try short of the bound: the next transient failure gives up
        store.update_remote_file(item.file_id, tries=MAX_TRIES - 1)
    emulator.faults.add_rule(action="status", method="DELETE", path_prefix="/v1/files", status=503, count=1)
    hygiene = Hygiene(store, harness.remote, harness.engine.holds, harness.flags.stop)
    hygiene.run_due()
    states = {f.state for f in store.remote_files(job.id)}
    assert states == {"abandoned"}  # one permanent 400, one transient at the bound
    assert not hygiene.due(1e12)
    assert len(emulator.files()) == 2  # left for the service's own expiry
