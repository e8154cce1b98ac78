"""What submission and collection share: their collaborators (the refitter among them), and how one
step is retried."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial

from daemon.clock import WALL_CLOCK, Clock
from daemon.config import Settings
from daemon.intake.quarantine import Quarantine
from daemon.intake.refitter import Refitter
from daemon.service.batch_service import BatchService
from daemon.service.file_room import FileRoom
from daemon.service.holds import Holds
from daemon.service.profile_services import ProfileServices, profile_services
from daemon.service.retrying import in_call
from daemon.state.rows import Job, Part
from daemon.state.store import Store


class PartSteps:
    """Base for the services that move one part a step forward, each step re-read from the state."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        remote: BatchService | ProfileServices,
        holds: Holds,
        stop: threading.Event,
        *,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock  # retries and poll waits are scheduled by it
        self.store = store
        self.services = profile_services(remote)
        self.remote = self.services.default  # the default profile's; a job's steps use service(job)
        self.holds = holds
        self.stop = stop
        self.quarantine = Quarantine(settings, store)
        self.refitter = Refitter(settings, store)  # a part over its model's token limit is split to fit
        self.file_room = FileRoom(store)  # room for input files (max_files); one lock for all workers

    def service(self, job: Job) -> BatchService:
        """The service of the job's provider profile (AccountError while it is not configured)."""
        return self.services.of(job.profile)

    def retried(self, part_id: int, job: Job, step: Callable[[Part, Job], None], what: str = "part") -> None:
        """Run ``step`` with quick in-call retries; each try starts from the part's persisted state,
        so a try after an ambiguous failure reconciles instead of repeating a POST blindly. A step
        that keeps failing the same way on this job sets the job aside (quarantine)."""
        self.quarantine.guard(job.id, what, partial(self._attempts, part_id, job, step))

    def _attempts(self, part_id: int, job: Job, step: Callable[[Part, Job], None]) -> None:
        for attempt in in_call(self.stop):
            with attempt:
                step(self.store.part(part_id), job)
