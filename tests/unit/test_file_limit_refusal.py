"""An upload the service refuses for its limit on input files waits for room; the input never fails.

batchd's own count (max_files) sees only its own files: files left by other tools can fill the
service first. The emulator's `file_limit` refuses such an upload with a 400 `quota_exceeded`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from structlog.testing import capture_logs

from daemon.cli.status import job_rows
from daemon.config import Settings
from daemon.emulator import EmulatorServer, EmulatorSettings
from daemon.service.credentials import KeySource
from daemon.service.file_room import RECHECK, REFUSED_FIRST_WAIT, REFUSED_PREFIX
from daemon.service.holds import Holds
from daemon.service.openai_service import OpenAIService
from daemon.service.sdk_errors import file_limit_refused
from daemon.service.submitter import Submitter
from daemon.state.rows import Job, Part
from daemon.state.states import JobState, PartState
from daemon.state.store import Store
from tests.support import FAST, TEST_KEY, FakeClock, request_file

AZURE_WORDS = "The quota for files without expiry is reached. The maximum is 500."
EMULATOR_WORDS = "The maximum number of files (1) for this resource has been reached. Please delete files."


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, "quotaExceeded", AZURE_WORDS, True),  # Azure's reply
        (400, "quota_exceeded", EMULATOR_WORDS, True),
        (400, "", "The maximum number of files (500) for this resource has been reached.", True),
        (400, "quota_exceeded", "The enqueued token quota is used up.", False),  # not about files
        (400, "", "File is too large.", False),  # refused for good
        (400, "", "The file exceeds the maximum file size of 200 MB.", False),
        (500, "quotaExceeded", AZURE_WORDS, False),  # a server fault, retried as one
    ],
)
def test_the_refusal_is_told_by_status_code_and_message(status: int, code: str, message: str, expected: bool) -> None:
    assert file_limit_refused(status, code, message) is expected


class Rig:
    def __init__(self, tmp: Path, emulator: EmulatorServer, clock: FakeClock) -> None:
        self.tmp, self.emulator, self.clock = tmp, emulator, clock
        self.store = Store(tmp / "state.sqlite3")
        self.remote = OpenAIService.connect(KeySource("test key", value=TEST_KEY), emulator.base_url, 5.0)
        self.client = openai.OpenAI(api_key=TEST_KEY, base_url=emulator.base_url, max_retries=0)
        settings = Settings(root=tmp, base_url=emulator.base_url, request_timeout=5.0)
        self.submitter = Submitter(settings, self.store, self.remote, Holds(self.store), threading.Event(), clock=clock)

    def ready_part(self) -> Part:
        now = self.clock.now()
        job = Job(
            "20260101T000000Z-0000beef",
            "in.jsonl",
            str(self.tmp / "in.jsonl"),
            str(self.tmp / "out"),
            JobState.ACTIVE,
            now,
            now,
            sha256="ab" * 32,
            endpoint="/v1/chat/completions",
            model="gpt-4o-mini",
            request_count=2,
        )
        self.store.add_job(job)
        path = self.tmp / "part-0.jsonl"
        path.write_text(request_file(2))
        part = Part(job.id, 0, 0, str(path), 1, 2, path.stat().st_size, 50, PartState.READY, now, now)
        return self.store.add_part(part)

    def foreign_upload(self) -> str:
        """A file another tool left on the service: batchd's own count cannot see it."""
        path = self.tmp / "other.jsonl"
        path.write_text(request_file(1))
        with open(path, "rb") as fh:
            return self.client.files.create(file=("other.jsonl", fh, "application/jsonl"), purpose="batch").id

    def refused_uploads(self) -> int:
        return sum(1 for call in self.emulator.calls.entries() if call.route == "/v1/files" and call.status == 400)

    def close(self) -> None:
        self.client.close()
        self.remote.close()
        self.store.close()


@pytest.fixture(name="rig")
def rig_fixture(tmp_path: Path) -> Iterator[Rig]:
    clock = FakeClock()
    settings = EmulatorSettings(**FAST, data_dir=tmp_path / "emulator", file_limit=1)  # type: ignore[arg-type]
    with EmulatorServer(settings, clock=clock) as emulator:
        rig = Rig(tmp_path, emulator, clock)
        try:
            yield rig
        finally:
            rig.close()


def test_a_refused_upload_waits_ready_with_a_reason_and_goes_once_there_is_room(rig: Rig) -> None:
    foreign = rig.foreign_upload()
    part = rig.ready_part()
    start = rig.clock.now()
    with capture_logs() as captured:
        rig.submitter.advance(part.id)
        first = rig.store.part(part.id)
        rig.clock.advance(first.next_action_at - rig.clock.now())
        rig.submitter.advance(part.id)
        second = rig.store.part(part.id)
    events = [e["event"] for e in captured if e["log_level"] in ("warning", "error")]
    assert events == ["upload_refused_for_file_room"]  # logged once, not at every try
    assert rig.store.job(part.job_id).state == JobState.ACTIVE  # nothing failed
    assert first.state == second.state == PartState.READY and first.intent_at is None
    assert (second.last_error or "").startswith(REFUSED_PREFIX) and "delete_remote_files" in (second.last_error or "")
    assert first.next_action_at == start + REFUSED_FIRST_WAIT  # a pause, not a quick in-call retry
    assert second.next_action_at - first.next_action_at == 2 * REFUSED_FIRST_WAIT  # backing off
    assert rig.refused_uploads() == 2
    why = job_rows(rig.store, rig.clock.now())[0]["why"]  # what `batchd status` says
    assert why.startswith("retry in ") and REFUSED_PREFIX in why
    rig.client.files.delete(foreign)  # room made by hand elsewhere: the next try goes
    rig.clock.advance(second.next_action_at - rig.clock.now())
    rig.submitter.advance(part.id)
    done = rig.store.part(part.id)
    assert done.state == PartState.SUBMITTED and done.last_error is None


def test_the_pause_between_refused_uploads_is_bounded(rig: Rig) -> None:
    rig.foreign_upload()
    part = rig.ready_part()
    rig.store.update_part(part.id, tries=20)  # refused many times already
    rig.submitter.advance(part.id)
    assert rig.store.part(part.id).next_action_at - rig.clock.now() == RECHECK
