"""Storage faults: a full disk or a read-only results or state folder corrupts nothing, loses
nothing, is reported, and the work resumes by itself once the operator fixes it.

The root folder lives on a small tmpfs mounted for the test; "read-only" is a read-only bind mount
(root ignores file modes, so chmod would prove nothing). Both need root, as CI runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.emulator import EmulatorServer
from daemon.state.folders import DB_NAME
from daemon.state.states import JobState, PartState
from tests.support import Harness, fast_settings, request_file, wait_until


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as probe:
        try:
            _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", probe)
        except (OSError, subprocess.CalledProcessError):
            return False
        subprocess.run(["umount", probe], check=True)
    return True


pytestmark = pytest.mark.skipif(not _can_mount(), reason="needs root and permission to mount a tmpfs")


class Disk:
    """A tmpfs of its own, so "full" and "read-only" are real errors from the kernel."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir()
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))

    def fill(self) -> Path:
        """Take every free byte: unbuffered writes, halving the size until not one byte fits."""
        ballast = self.path / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = 1 << 20
            while size:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    size //= 2
        finally:
            os.close(fd)
        return ballast

    @contextlib.contextmanager
    def read_only(self, folder: Path) -> Iterator[None]:
        _mount("--bind", str(folder), str(folder))
        try:
            _mount("-o", "remount,bind,ro", str(folder))
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture(name="disk_harness")
def disk_harness_fixture(tmp_path: Path, emulator: EmulatorServer) -> Iterator[tuple[Disk, Harness]]:
    disk = Disk(tmp_path / "disk", "8m")
    harness = Harness(fast_settings(disk.path / "root", emulator.base_url), emulator)
    try:
        (disk.path / "root").mkdir()
        yield disk, harness.start()
    finally:
        try:
            harness.stop()
        finally:
            disk.unmount()


def _storage_complaints(captured: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in captured if e["event"] in ("storage_failed", "loop_pass_failed", "poll_crashed")]


def _assert_state_intact(harness: Harness) -> None:
    conn = sqlite3.connect(harness.settings.state / DB_NAME)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def _assert_complete(harness: Harness, name: str, count: int) -> None:
    harness.wait_job(name, timeout=40)
    assert [r["custom_id"] for r in harness.results(name)] == [f"r{i}" for i in range(count)]
    assert (harness.settings.uploaded / name).exists()
    assert list(harness.settings.failed.iterdir()) == []


def test_read_only_results_folder_is_reported_and_retried(disk_harness: tuple[Disk, Harness]) -> None:
    disk, harness = disk_harness
    assert harness.store is not None
    store = harness.store
    with capture_logs() as captured, disk.read_only(harness.settings.results):
        harness.drop("a.jsonl", request_file(4))
        wait_until(lambda: _storage_complaints(captured), 20, "the read-only results folder to be reported")
        job = harness.job("a.jsonl")
        assert job is not None and job.state == JobState.ACTIVE
        assert all(p.state == PartState.FINISHED for p in store.parts(job.id)), "downloads wait, nothing is skipped"
        assert "Read-only file system" in _storage_complaints(captured)[0]["error"]
    _assert_complete(harness, "a.jsonl", 4)


def test_read_only_state_folder_is_reported_and_retried(disk_harness: tuple[Disk, Harness]) -> None:
    disk, harness = disk_harness
    with capture_logs() as captured, disk.read_only(harness.settings.state / "parts"):
        harness.drop("a.jsonl", request_file(4))
        wait_until(lambda: _storage_complaints(captured), 20, "the read-only state folder to be reported")
        job = harness.job("a.jsonl")
        assert job is not None and job.state == JobState.CLAIMED, "the input waits in custody, it is not failed"
        assert (Path(job.inflight_path)).read_text() == request_file(4)
    _assert_complete(harness, "a.jsonl", 4)


def test_full_disk_corrupts_nothing_and_work_resumes_when_space_returns(
    disk_harness: tuple[Disk, Harness],
) -> None:
    disk, harness = disk_harness
    assert harness.store is not None
    store = harness.store
    harness.drop("a.jsonl", request_file(40))
    job = wait_until(lambda: (j := harness.job("a.jsonl")) and j.state == JobState.ACTIVE and j, what="submission")
    with capture_logs() as captured:
        ballast = disk.fill()
        wait_until(lambda: _storage_complaints(captured), 20, "the full disk to be reported")
        assert store.job(job.id).state == JobState.ACTIVE
        assert not (Path(job.result_dir or "") / "results.jsonl").exists()
        _assert_state_intact(harness)
        ballast.unlink()
    _assert_complete(harness, "a.jsonl", 40)
    leftovers = [p.name for p in Path(job.result_dir or "").iterdir() if p.name.startswith(".")]
    assert leftovers == [], "no half-written temp files stay behind"
