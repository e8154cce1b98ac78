"""The hourly creation budget: the service allows ``creation_budget`` batch creations per
``creation_window`` (about 2,000 an hour), and a create beyond it is refused with a 429.

A steady trickle of small files, each alone in the queue when it is checked, would create one batch
per file: 5,000 files an hour would spend the budget by the 24th minute and then meet 429s. So the
budget is counted (the batches created in the last window, read from the state so that a restart
keeps the count, plus the parts about to create one) and the packer's wait stretches as it fills:

- up to half the budget used: nothing changes (a small input waits ``pack_wait`` only while more
  inputs are arriving; one alone in the queue goes at once);
- from half to all of it: every small input waits for company, even alone, for
  ``pack_wait + (pack_wait_max - pack_wait) * (used / budget - 1/2) * 2`` seconds after it was checked,
  so at most about one batch per endpoint and model is created per wait;
- never longer than ``pack_wait_max``: that bound holds whatever the budget says.

With the defaults (2,000 an hour, 0.5 s, 60 s) a trickle settles a little above half the budget:
there a wait of a few seconds already gathers the files of that time into one batch.

Each provider profile's service has its own limit: the budget (``creation_budget`` per
``creation_window`` for each) is counted per profile, from the creates of its jobs' parts, so creates on
Azure never hold OpenAI's back. Asked without a profile, it counts the creates of all of them.

An input too big to share a batch never waits here. Its parts (and a pack that waited its bound)
are held back only when the budget is spent (``create_wait``), until the oldest create leaves the
window: the service would refuse that create with a 429 anyway, so this delays nothing it would
have accepted. Creates started in parallel by several workers may still overshoot by a few; the
service's 429 (with Retry-After) then reschedules them as before.
"""

from __future__ import annotations

from daemon.config import Settings
from daemon.state.states import PartState
from daemon.state.store import Store

STRETCH_FROM = 0.5  # the fraction of the budget used from which small inputs wait for company


def stretched_wait(fill: float, pack_wait: float, pack_wait_max: float) -> float:
    """How long a small input waits for company when ``fill`` of the budget is used (0: the
    budget asks for no wait of its own)."""
    if fill < STRETCH_FROM:
        return 0.0
    share = min(1.0, (fill - STRETCH_FROM) / (1.0 - STRETCH_FROM))
    return min(pack_wait_max, pack_wait + (pack_wait_max - pack_wait) * share)


class CreationBudget:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.budget = settings.creation_budget
        self.window = settings.creation_window
        self.pack_wait = settings.pack_wait
        self.pack_wait_max = settings.pack_wait_max
        self.store = store

    def used(self, now: float, profile: str | None = None) -> int:
        """Batches created in the last window, and those on their way to be created (on ``profile``)."""
        created = self.store.creation_times(now - self.window, profile)
        return len(created) + self.store.uncreated_batches(profile=profile)

    def pack_wait_now(self, now: float, profile: str | None = None) -> float:
        """The wait for company the budget asks of a small input now (0 below half of it)."""
        return stretched_wait(self.used(now, profile) / self.budget, self.pack_wait, self.pack_wait_max)

    def tight(self, now: float, profile: str | None = None) -> bool:
        """Whether a small input should wait for company even when it is alone in the queue."""
        return self.pack_wait_now(now, profile) > 0

    def create_wait(self, now: float, profile: str | None = None) -> float:
        """Seconds until one more batch may be created on ``profile``'s service without going over
        its budget (0: now). Creates other workers have under way (BATCH_INTENT) count as made."""
        created = self.store.creation_times(now - self.window, profile)
        over = len(created) + self.store.uncreated_batches((PartState.BATCH_INTENT,), profile) - self.budget
        if over < 0:
            return 0.0
        if over >= len(created):  # the creates under way fill the budget alone: look again once they are made
            return self.window
        return max(0.0, created[over] + self.window - now)  # when enough creates have left the window
