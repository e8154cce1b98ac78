"""An operator in the daemon's group, without the key and without access to state/, cancels a job.

As under systemd: the data root is group-readable, state/ owner-only, commands/ setgid and
group-writable (systemd/batchd.tmpfiles). The daemon runs as this test's user (root, as CI runs);
the operator is ``nobody`` with the folders' group, running the command in a process of its own
through the system's Python (the test's interpreter may live where ``nobody`` cannot read).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator import EmulatorServer
from daemon.ops.command_queue import spool_folder
from daemon.state.command_queries import DONE
from daemon.state.states import JobState
from tests.support import Harness, fast_settings, request_file, wait_until

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
OPERATOR, GROUP = "nobody", "nogroup"


def _readable_by_others(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o005 == 0o005 for p in [path, *path.parents])


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root, to run the command as another user"
    try:
        pwd.getpwnam(OPERATOR), grp.getgrnam(GROUP)
    except KeyError:
        return f"needs the user {OPERATOR} and the group {GROUP}"
    found = (
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if os.path.exists(SYSTEM_PYTHON)
        else None
    )
    if found is None or found.stdout.strip() != str(sys.version_info[:2]):
        return f"needs {SYSTEM_PYTHON} of Python {sys.version_info[0]}.{sys.version_info[1]}"
    if not (_readable_by_others(REPO) and _readable_by_others(Path(sysconfig.get_paths()["purelib"]))):
        return "needs the checkout and its packages readable by other users"
    return None


@pytest.fixture(name="shared_root")
def shared_root_fixture() -> Iterator[Path]:
    """A data root outside the test's owner-only temporary folder, set up as batchd.tmpfiles does."""
    gid = grp.getgrnam(GROUP).gr_gid
    top = Path(tempfile.mkdtemp(prefix="batchd-operator-"))
    try:
        os.chmod(top, 0o755)
        root = top / "root"
        root.mkdir(mode=0o750)
        os.chown(root, -1, gid)
        commands = spool_folder(root)
        commands.mkdir()
        os.chown(commands, -1, gid)
        os.chmod(commands, 0o2770)
        yield root
    finally:
        shutil.rmtree(top)


def _as_operator(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PYTHONPATH": f"{REPO}{os.pathsep}{sysconfig.get_paths()['purelib']}",
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
    }
    gid = grp.getgrnam(GROUP).gr_gid
    return subprocess.run(
        [SYSTEM_PYTHON, "-m", "daemon", *args],
        env=env,
        user=pwd.getpwnam(OPERATOR).pw_uid,
        group=gid,
        extra_groups=[gid],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))
def test_a_group_member_without_the_key_cancels_through_the_daemon(shared_root: Path, emulator: EmulatorServer) -> None:
    harness = Harness(fast_settings(shared_root, emulator.base_url), emulator).start()
    try:
        emulator.mishaps.never_end_next(1)
        harness.drop("run.jsonl", request_file(2))
        wait_until(lambda: emulator.batches() and emulator.batches()[0]["status"] == "in_progress", what="a batch")
        assert os.stat(harness.settings.state).st_mode & 0o077 == 0
        done = _as_operator("cancel", "run.jsonl", "--root", str(shared_root))
        assert done.returncode == 0, done.stderr
        assert "run.jsonl: batch" in done.stdout and "cancelling" in done.stdout
        harness.wait_job("run.jsonl", JobState.DONE)
        assert harness.store is not None
        [command] = harness.store.recent_commands()
        assert (command.state, command.requested_by) == (DONE, OPERATOR), "who asked: the request file's owner"
        refused = _as_operator("retry", "gone.jsonl", "--root", str(shared_root))
        assert refused.returncode == 1 and "no input called 'gone.jsonl'" in refused.stderr
    finally:
        harness.stop()
