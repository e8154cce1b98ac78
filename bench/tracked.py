"""Many active batches at once: created in the emulator, and tracked in a state DB as batchd would.

The batches are created straight in the emulator's store (no HTTP, so no calls are counted and
10,000 of them take seconds, not minutes); they share one small input file. The state DB gets one
ACTIVE job with one SUBMITTED part per batch, with the fields the submitter records on submission.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.emulator import EmulatorServer
from daemon.emulator.params import BatchParams, UploadParams
from daemon.intake.claim import new_job_id
from daemon.service.credentials import KeySource
from daemon.service.holds import Holds
from daemon.service.openai_service import OpenAIService
from daemon.service.poller import Poller
from daemon.state import folders
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store

ENDPOINT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
REQUESTS_PER_BATCH = 1


def create_remote_batches(server: EmulatorServer, count: int) -> list[dict[str, Any]]:
    """``count`` batches (as the API returns them), oldest first, all reading one uploaded input."""
    store = server.store
    staged = store.staging_path()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    staged.write_text(json.dumps({"custom_id": "r0", "method": "POST", "url": ENDPOINT, "body": body}) + "\n")
    upload = store.add_upload(staged, "bench-input.jsonl", UploadParams("batch", None))
    return [
        store.create_batch(BatchParams(upload["id"], ENDPOINT, "24h", {"bench": str(n)}, None)) for n in range(count)
    ]


def seed_state(settings: Settings, store: Store, batches: list[dict[str, Any]]) -> None:
    """One ACTIVE job and one SUBMITTED part per batch, in one transaction, submitted in list order."""
    now = time.time() - len(batches) * 0.001
    with store.transaction():
        for n, batch in enumerate(batches):
            submitted = now + n * 0.001  # the order the daemon would have submitted them in
            _seed_one(settings, store, batch, submitted)


def _seed_one(settings: Settings, store: Store, batch: dict[str, Any], submitted: float) -> None:
    job_id = new_job_id() + f"-{batch['id'][-6:]}"
    name = f"{job_id}.jsonl"
    inflight = settings.state / folders.INFLIGHT / name
    job = Job(job_id, name, str(settings.pending / name), str(inflight), JobState.ACTIVE, submitted, submitted)
    job.endpoint, job.model, job.request_count = ENDPOINT, MODEL, REQUESTS_PER_BATCH
    job.size, job.sha256, job.result_dir = 100, "0" * 64, str(settings.results / job_id)
    store.add_job(job)
    part_path = settings.state / folders.PARTS / job_id / "0.jsonl"
    part = Part(job_id, 0, 0, str(part_path), 1, REQUESTS_PER_BATCH, 100, 10, PartState.SUBMITTED, submitted, submitted)
    part.file_id, part.batch_id, part.batch_status = batch["input_file_id"], batch["id"], batch["status"]
    part.batch_json, part.submitted_at = json.dumps(batch), submitted
    part.poll_wait = settings.first_poll_after
    part.next_action_at = submitted + settings.first_poll_after
    store.add_part(part)


def open_state(settings: Settings) -> Store:
    folders.prepare(settings)
    return Store(settings.state / folders.DB_NAME)


def build_poller(settings: Settings, store: Store) -> tuple[Poller, OpenAIService]:
    """The daemon's own Poller, not started: the benchmark calls poll_once itself."""
    assert settings.base_url is not None
    remote = OpenAIService.connect(KeySource("bench", value="bench-dummy-key"), settings.base_url, 60)
    return Poller(settings, store, remote, Holds(store), threading.Event(), lambda: None), remote


def api_calls(server: EmulatorServer) -> int:
    """Calls the emulator answered on the public API (not its /_emulator control routes)."""
    return sum(n for (_, route), n in server.calls.counts().items() if route.startswith("/v1/"))


def calls_by_route(server: EmulatorServer) -> str:
    counts = sorted(server.calls.counts().items())
    return ", ".join(f"{method} {route} x{n}" for (method, route), n in counts) or "none"


def call_target(active: int, changed: int) -> int:
    return math.ceil(active / 100) + changed


def root_settings(root: Path, base_url: str) -> Settings:
    return Settings(root=root, base_url=base_url, poll_interval=60, first_poll_after=5, scan_interval=5)
