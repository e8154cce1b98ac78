"""Room for input files on a service that keeps only so many at once (a profile's ``max_files``:
an Azure resource keeps 500 input files).

Before a part is uploaded, the profile's input files the service still holds are counted from the
state (uploads not yet deleted by the remote cleanup, and uploads under way). At the limit the part
waits, ready and unsent, with a reason saying so: the upload would only be refused. Each deletion of
an input file by the remote cleanup makes room, and wakes the parts waiting for it at once; a check
every ``RECHECK`` seconds besides covers room made another way (files deleted by hand elsewhere
are not seen: the count only goes down as batchd deletes).
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
            if part.last_error and part.last_error.startswith(REASON_PREFIX):
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

    def free(self, profile: str, now: float) -> int:
        """An input file of the profile was deleted: the parts waiting for room try again now."""
        return self.store.wake_parts_waiting(profile, REASON_PREFIX, now)
