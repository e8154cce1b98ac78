"""Helpers shared by the tests of every tier and by bench/: request files, condition waits, the daemon
in-process on a thread (Harness) or in its own process (spawn_daemon), and the settings that make it quick.

Fixtures built on these live in tests/conftest.py; this module has none, so bench/ can import it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from daemon.cli.command_handlers import daemon_handlers
from daemon.cli.web_server import web_endpoints
from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.emulator.params import BatchParams, UploadParams
from daemon.engine.main_loop import Engine
from daemon.ops.command_desk import HandlerFactory
from daemon.ops.signals import StopFlags
from daemon.providers import DEFAULT_PROFILE
from daemon.results.collector import Collector
from daemon.service.credentials import KeySource
from daemon.service.holds import Holds
from daemon.service.openai_service import OpenAIService
from daemon.service.poller import Poller
from daemon.service.profile_services import ProfileServices, service_for
from daemon.service.submitter import Submitter
from daemon.state import folders, schema
from daemon.state.rows import Job
from daemon.state.states import JobState
from daemon.state.store import Store

TEST_KEY = "sk-test-SECRETKEY-0123456789abcdef"
FAST = {"validating_seconds": 0.05, "in_progress_seconds": 0.2, "finalizing_seconds": 0.05, "cancelling_seconds": 0.05}


def wait_until(
    predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition", every: float = 0.02
) -> Any:
    """Wait for ``predicate`` to return something truthy, checking every ``every`` s; fail after ``timeout``."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        pause.wait(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FakeClock:
    """A clock the test moves by hand: a daemon ``Clock`` (``now()``) and, called, the emulator's clock."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()  # the emulator reads it from its server threads

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.now()  # moved by hand only, never back

    def __call__(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> float:
        """Move on by ``seconds``; return the new time."""
        with self._lock:
            self._now += seconds
            return self._now


class ShiftedClock:
    """The emulator's clock: the wall clock moved by ``offset`` seconds, so batches finish when the test says
    (or one looks made "an hour ago")."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class ClockedService:
    """An emulator, and a daemon's settings, state database and service client, all on one FakeClock."""

    clock: FakeClock
    emulator: EmulatorServer
    settings: Settings
    store: Store
    remote: OpenAIService


@contextmanager
def clocked_service(
    tmp_path: Path, running: float, settings_extra: Mapping[str, Any] | None = None, **emulator: Any
) -> Iterator[ClockedService]:
    """Batches start in_progress, run ``running`` fake seconds and end at once; the first poll after 1 s, then
    every 8 s. ``settings_extra``: more Settings; ``emulator``: more EmulatorSettings (a token_limit...)."""
    clock = FakeClock()
    timing = EmulatorSettings(
        validating_seconds=0.0,
        in_progress_seconds=running,
        finalizing_seconds=0.0,
        cancelling_seconds=0.0,
        data_dir=tmp_path / "emulator",
        **emulator,
    )
    with EmulatorServer(timing, clock=clock) as server:
        extra = dict(settings_extra or {})
        settings = Settings(root=tmp_path, base_url=server.base_url, first_poll_after=1.0, poll_interval=8.0, **extra)
        (tmp_path / "state").mkdir()
        store = Store(tmp_path / "state" / folders.DB_NAME)
        remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), server.base_url, 10.0)
        try:
            yield ClockedService(clock, server, settings, store, remote)
        finally:
            remote.close()
            store.close()


@dataclass
class PartRig:
    """The daemon's submit, poll and collect steps over a ClockedService, each taken when the test says."""

    clock: FakeClock
    emulator: EmulatorServer
    store: Store
    holds: Holds
    submitter: Submitter
    poller: Poller
    collector: Collector
    tmp: Path

    def upload(self, path: Path) -> str:
        """``path`` as the emulator keeps an upload; its file id."""
        staged = self.emulator.store.staging_path()
        staged.write_bytes(path.read_bytes())
        return str(self.emulator.store.add_upload(staged, path.name, UploadParams("batch", None))["id"])

    def fill_queue(self, model: str, requests: int) -> None:
        """A batch of another client of the account, straight in the emulator: ``model``'s queue fills."""
        staged = self.emulator.store.staging_path()
        staged.write_text(request_file(requests, prefix="other", model=model))
        upload = self.emulator.store.add_upload(staged, "other.jsonl", UploadParams("batch", None))
        self.emulator.store.create_batch(BatchParams(upload["id"], "/v1/chat/completions", "24h", None, None))


R = TypeVar("R", bound=PartRig)


@contextmanager
def part_rig(
    tmp_path: Path, running: float, kind: type[R], token_limit_ttl: float = 0.0, **emulator: Any
) -> Iterator[R]:
    """A ``kind`` rig (PartRig or a test's own with more steps) on a clocked service; ``emulator``: more
    EmulatorSettings (a token_limit...)."""
    with clocked_service(tmp_path, running, {"token_limit_ttl": token_limit_ttl}, **emulator) as on:
        clock, settings, store, remote = on.clock, on.settings, on.store, on.remote
        holds, stop = Holds(store, clock, token_limit_ttl), threading.Event()
        submitter = Submitter(settings, store, remote, holds, stop, clock=clock)
        poller = Poller(settings, store, remote, holds, stop, lambda: None, clock=clock)
        collector = Collector(settings, store, remote, holds, stop, clock=clock)
        yield kind(clock, on.emulator, store, holds, submitter, poller, collector, tmp_path)


def request_line(cid: str, url: str = "/v1/chat/completions", model: str = "gpt-4o-mini", pad: int = 0) -> str:
    """One request line; ``pad`` characters of filler make it as large as a benchmark needs."""
    filler = " " + "x" * pad if pad else ""
    if url == "/v1/embeddings":
        body: dict[str, Any] = {"model": model, "input": f"text {cid}{filler}"}
    elif url == "/v1/responses":
        body = {"model": model, "input": f"question {cid}{filler}"}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": f"question {cid}{filler}"}]}
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def request_file(n: int, prefix: str = "r", **kw: Any) -> str:
    return "".join(request_line(f"{prefix}{i}", **kw) + "\n" for i in range(n))


def fast_settings(root: Path, base_url: str, **changes: Any) -> Settings:
    base = Settings(
        root=root,
        base_url=base_url,
        poll_interval=0.2,
        first_poll_after=0.05,
        scan_interval=0.2,
        min_file_age=0.3,
        heartbeat_interval=0.2,
        request_timeout=5.0,
        # Tests look at the emulator's files after a job ends; test_hygiene turns deletion back on.
        delete_remote_files=False,
    )
    return dataclasses.replace(base, **changes)


@dataclass
class Harness:
    """The real engine, run in-process on a thread, against the emulator."""

    settings: Settings
    server: EmulatorServer
    flags: StopFlags = field(default_factory=StopFlags)
    engine: Engine | None = None
    store: Store | None = None
    lock: folders.InstanceLock | None = None
    remote: OpenAIService | None = None
    services: ProfileServices | None = None  # the default profile's is ``remote``; one more per other profile
    thread: threading.Thread | None = None
    # How it carries out `batchd cancel` ... sent to it (as `batchd run` does); None: they act directly.
    commands: HandlerFactory | None = daemon_handlers

    def start(self) -> Harness:
        folders.prepare(self.settings)
        self.lock = folders.InstanceLock(self.settings.state)
        self.lock.acquire()
        self.store = Store(self.settings.state / folders.DB_NAME)
        key = KeySource("test key", value=TEST_KEY)
        self.remote = OpenAIService.for_profile(self.settings.default_profile, key, self.settings.request_timeout)
        others = {n: p for n, p in self.settings.providers.items() if n != DEFAULT_PROFILE}
        self.services = ProfileServices(
            {DEFAULT_PROFILE: self.remote}
            | {n: service_for(p, key, self.settings.request_timeout) for n, p in others.items()}
        )
        self.flags = StopFlags()
        self.engine = Engine(self.settings, self.store, self.services, self.flags, commands=self.commands)
        self.engine.endpoints += web_endpoints(self.engine)  # as `batchd run` adds them
        self.engine.start()
        self.thread = threading.Thread(target=self.engine.run, name="test-engine", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.engine is None:
            return
        self.flags.stop.set()
        self.engine.wake()  # the loop sees the stop now, not at the end of its wait
        assert self.thread is not None
        self.thread.join(10)
        self.engine.shutdown()
        assert self.store is not None and self.lock is not None
        self.store.close()
        self.lock.release()
        if self.services is not None:
            self.services.close()  # the default profile's ``remote`` among them
        self.engine = None

    def drop(self, name: str, content: str | bytes, folder: str = "") -> Path:
        """Drop ``name`` as a careful producer does (drop_into), in the profile subfolder ``folder``."""
        return drop_into(self.settings.pending, name, content, folder)

    def profile_job(self, profile: str, *states: JobState, timeout: float = 20) -> Job:
        """Wait for a job of ``profile`` in one of ``states``."""

        def found() -> Job | None:
            assert self.store is not None
            jobs = [j for j in self.store.jobs() if j.profile == profile and j.state in states]
            return jobs[0] if jobs else None

        return wait_until(found, timeout, f"a job of profile {profile} in {states}")  # type: ignore[no-any-return]

    def job(self, name: str) -> Job | None:
        assert self.store is not None
        found = [j for j in self.store.jobs() if j.source_name == name]
        return found[-1] if found else None

    def wait_job(self, name: str, *states: JobState, timeout: float = 20.0) -> Job:
        wanted = states or (JobState.DONE,)

        def settled() -> Job | None:
            job = self.job(name)
            return job if job is not None and job.state in wanted else None

        return wait_until(settled, timeout, f"{name} to reach {', '.join(wanted)}")  # type: ignore[no-any-return]

    def results(self, name: str) -> list[dict[str, Any]]:
        job = self.job(name)
        assert job is not None and job.result_dir
        text = (Path(job.result_dir) / "results.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]

    def summary(self, name: str) -> dict[str, Any]:
        job = self.job(name)
        assert job is not None and job.result_dir
        return json.loads((Path(job.result_dir) / "summary.json").read_text())  # type: ignore[no-any-return]


def drop_into(pending: Path, name: str, content: str | bytes, folder: str = "") -> Path:
    """Write the way a careful producer does: a dot-temp file, then a rename into place; in the
    profile subfolder ``folder`` of the drop zone ``pending`` if one is named."""
    data = content.encode() if isinstance(content, str) else content
    where = pending / folder
    where.mkdir(exist_ok=True)
    tmp = where / f".{name}.tmp"
    tmp.write_bytes(data)
    dest = where / name
    os.rename(tmp, dest)
    return dest


def drop_before_start(harness: Harness, files: dict[str, str]) -> None:
    """Drop every file before the daemon starts, so one pass claims them all at once (and small ones share)."""
    harness.settings.pending.mkdir(parents=True, exist_ok=True)
    long_ago = time.time() - 60.0  # the files look long finished: no waiting for them to settle
    for name, text in files.items():
        path = harness.settings.pending / name
        path.write_text(text)
        os.utime(path, (long_ago, long_ago))


# The daemon's quick settings, as `BATCHD_*` variables, for a daemon in its own process. Its inputs are
# mostly dropped before it starts (no event proves them complete), so it claims them after one quiet
# min_file_age, seen by the next scan: both short.
FAST_DAEMON = {
    "poll_interval": 0.2,
    "first_poll_after": 0.05,
    "scan_interval": 0.1,
    "min_file_age": 0.1,
    "heartbeat_interval": 0.2,
}


def service_env(base_url: str, settings: Mapping[str, object], key: str = TEST_KEY) -> dict[str, str]:
    """This environment without any BATCHD_/OPENAI_ variable, plus the emulator, a key, JSON logs and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "BATCHD_"))}
    env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=key, BATCHD_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
    env.update({f"BATCHD_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def daemon_env(base_url: str, **extra: str) -> dict[str, str]:
    """The environment of a quick daemon in its own process; ``extra`` adds or overrides variables."""
    env = service_env(base_url, FAST_DAEMON)
    env.update(extra)
    return env


def job_states(root: Path) -> list[tuple[str, str]]:
    """(input name, job state) of every job, read from outside a daemon running on ``root``."""
    db = root / "state" / folders.DB_NAME
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute("SELECT source_name, state FROM jobs WHERE kind = 'input'"))  # not packs
    except sqlite3.OperationalError:  # the daemon has not created its tables yet
        return []
    finally:
        conn.close()


def spawn_daemon(root: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The real daemon, as a user runs it, in its own process."""
    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--root", str(root)], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def version_7_database(db: Path, est_tokens: int, part_state: str) -> None:
    """Write ``db`` as a version 7 daemon left it (parts without a model): job ``j1`` of gpt-4o-mini, active,
    and its one part."""
    old = schema._SCHEMA.replace("    model TEXT,\n    UNIQUE", "    UNIQUE")
    assert old != schema._SCHEMA, "the version 7 parts table can no longer be told from the current one"
    conn = sqlite3.connect(db)
    conn.executescript(old + "PRAGMA user_version = 7;")
    conn.execute(
        "INSERT INTO jobs (id, source_name, source_path, inflight_path, state, model, created_at, updated_at)"
        " VALUES ('j1', 'a.jsonl', '', '', 'active', 'gpt-4o-mini', 0, 0)"
    )
    conn.execute(
        "INSERT INTO parts (job_id, segment, attempt, path, first_line, request_count, byte_size, est_tokens,"
        " state, created_at, updated_at) VALUES ('j1', 0, 0, 'p', 1, 1, 1, ?, ?, 0, 0)",
        (est_tokens, part_state),
    )
    conn.commit()
    conn.close()


def lose_state(root: Path) -> None:
    """Delete the state database (and its log and index), as a user or a bad cleanup might."""
    db = root / "state" / folders.DB_NAME
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)


def run_recover(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`batchd recover` on ``root``, as a user runs it."""
    command = [sys.executable, "-m", "daemon", "recover", "--root", str(root), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


# Prometheus scrapes, for the metrics and stuck-batch tests.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of one scrape, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample with exactly ``labels``; else the sum of those carrying them among others (a metric
    by profile too, read over every profile); None if there is none."""
    exact = samples.get((name, tuple(sorted(labels.items()))))
    if exact is not None:
        return exact
    wanted = set(labels.items())
    found = [v for (n, have), v in samples.items() if n == name and wanted <= set(have)]
    return sum(found) if found else None


def azure_profile(server_url: str, extra: str = "") -> str:
    """A `[providers.azure]` table for an Azure-shaped emulator at ``server_url``; polled as often as the
    tests like (the kind's minute between polls would only slow them)."""
    return f'[providers.azure]\nkind = "azure"\nbase_url = "{server_url}"\nmin_poll_interval = 0\n{extra}'


def batch_posts(server: EmulatorServer) -> int:
    """POST calls to the emulator's batches routes (creates and cancels)."""
    return sum(n for (method, route), n in server.calls.counts().items() if method == "POST" and "batches" in route)
