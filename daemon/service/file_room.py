"""Room for input files on a service that keeps only so many at once (a profile's ``max_files``:
an Azure resource keeps 500 input files).

Before a part is uploaded, the profile's input files the service still holds are counted from the
state (uploads not yet deleted by the remote cleanup, and uploads under way). At the limit the part
waits, ready and unsent, with a reason saying so: the upload would only be refused. Each deletion of
an input file by the remote cleanup makes room, and wakes the parts waiting for it at once; a check
every ``RECHECK`` seconds besides covers room made another way (files deleted by hand elsewhere
are not seen: the count only goes down as batchd deletes).

The count sees only batchd's own files: files left by other tools (or a limit lower than
``max_files``) can fill the service first, and it refuses the upload (FileLimitError). The input is
fine and nothing is paid yet, so the part does not fail: it waits the same way, ready with a reason
(logged once), tried again after a pause that doubles from ``REFUSED_FIRST_WAIT`` up to ``RECHECK``,
or at once when the remote cleanup deletes one of the profile's input files.
"""

from __future__ import annotations

import threading

from daemon.logs import get_logger
from daemon.providers import Profile
from daemon.state.rows import Part
from daemon.state.states import PartState
from daemon.state.store import Store

log = get_logger(__name__)
RECHECK = 300.0  # seconds between checks of a part waiting for room when no deletion wakes it
REASON_PREFIX = "waiting for room on the service: "
REFUSED_PREFIX = REASON_PREFIX + "the service refused the upload"  # woken by free() like a held part
REFUSED_FIRST_WAIT = 30.0  # seconds before a refused upload is tried again (a part may be 200 MB)


class FileRoom:
    """Whether the service of a profile can take one more input file now."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()  # a count and the upload intent it allows, one worker at a time

    def wait(self, part: Part, profile: Profile) -> float:
        """0 if the part may be uploaded now; otherwise seconds to wait, with the reason recorded."""
        if profile.max_files is None:
            return 0.0
        held = self.store.held_input_files(profile.name)
        if held < profile.max_files:
            if part.last_error and part.last_error.startswith(REASON_PREFIX) and not _refused(part):
                self.store.update_part(part.id, last_error=None)
            return 0.0
        reason = (
            f"{REASON_PREFIX}profile {profile.name} keeps at most {profile.max_files} input files "
            f"(max_files) and holds {held}; the upload waits until finished jobs' files are deleted "
            "(delete_remote_files)"
        )
        if part.last_error != reason:
            log.warning(
                "upload_held_for_file_room",
                job_id=part.job_id,
                part=part.label,
                profile=profile.name,
                files=held,
                max_files=profile.max_files,
            )
        self.store.update_part(part.id, last_error=reason)
        return RECHECK

    def reserve(self, part: Part, profile: Profile, now: float) -> bool:
        """Record the part's upload intent if there is still room (another worker may have taken the
        last place since ``wait``); False, with nothing written, if not."""
        with self._lock:
            if self.wait(part, profile) > 0:
                return False
            self.store.update_part(part.id, state=PartState.UPLOAD_INTENT, intent_at=now)
            return True

    def refused(self, part: Part, profile: str, error: str, now: float) -> float:
        """The service refused the part's upload for its file limit: the part is ready again (the
        refusal made nothing), with the reason and the pause before it is tried again."""
        wait = min(RECHECK, REFUSED_FIRST_WAIT * 2.0 ** min(part.tries, 8))
        reason = (
            f"{REFUSED_PREFIX}: profile {profile} holds as many input files as the service keeps (files "
            "left by other tools count too); it is tried again as room is made: delete input files no "
            f"longer needed there, or let delete_remote_files remove finished jobs' files ({error})"
        )
        if not _refused(part):
            log.warning(
                "upload_refused_for_file_room", job_id=part.job_id, part=part.label, profile=profile, error=error
            )
        self.store.update_part(
            part.id,
            state=PartState.READY,
            intent_at=None,
            tries=part.tries + 1,
            last_error=reason,
            next_action_at=now + wait,
        )
        return wait

    def free(self, profile: str, now: float) -> int:
        """An input file of the profile was deleted: the parts waiting for room try again now."""
        return self.store.wake_parts_waiting(profile, REASON_PREFIX, now)


def _refused(part: Part) -> bool:
    """Whether the part waits after the service refused its upload (cleared once it is uploaded)."""
    return (part.last_error or "").startswith(REFUSED_PREFIX)
