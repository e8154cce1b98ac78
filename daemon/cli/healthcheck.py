"""``batchd healthcheck``: healthy only while the main loop's heartbeat is fresh and its threads live."""

from __future__ import annotations

import json
import time

from daemon.state.store import Store


def check_health(store: Store, max_age: float, now: float | None = None) -> tuple[bool, str]:
    raw = store.fact("heartbeat")
    if raw is None:
        return False, "no heartbeat recorded yet; is batchd running on this root?"
    beat = json.loads(raw)
    if beat.get("stopped"):
        return False, "batchd stopped"
    age = (time.time() if now is None else now) - float(beat["at"])
    if age > max_age:
        return False, f"heartbeat is {age:.0f}s old (limit {max_age:.0f}s); the main loop is stuck or gone"
    if not beat.get("watcher_alive") or not beat.get("poller_alive"):
        return False, "the file watcher or the poller thread is not running"
    return True, f"ok (heartbeat {age:.1f}s old)"
