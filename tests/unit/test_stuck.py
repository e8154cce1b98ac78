"""Stuck-batch warnings: once per batch and status, from the service's own timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.config import Settings, load_settings
from daemon.errors import ConfigError
from daemon.service.batch_info import BatchInfo
from daemon.service.stuck_watch import StuckWatch
from daemon.state.rows import Part
from daemon.state.states import PartState


def _batch(status: str, **times: int | None) -> BatchInfo:
    return BatchInfo.from_dict(
        {
            "id": "batch_1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "input_file_id": "file-1",
            "completion_window": "24h",
            "created_at": 1000,
            "status": status,
            **times,
        }
    )


def _part() -> Part:
    return Part("job-1", 0, 0, "p", 1, 1, 1, 1, PartState.SUBMITTED, 0.0, 0.0, batch_id="batch_1")


def test_the_watch_uses_service_timestamps_and_first_sight_otherwise(tmp_path: Path) -> None:
    watch = StuckWatch(Settings(root=tmp_path, stuck_validating_after=100.0, stuck_finalizing_after=100.0))
    with capture_logs() as captured:
        watch.check(_part(), _batch("validating"), now=1050.0)  # 50 s since created_at: fine
        watch.check(_part(), _batch("validating"), now=1101.0)  # 101 s: stuck
        watch.check(_part(), _batch("validating"), now=1200.0)  # still stuck: already reported
        watch.check(_part(), _batch("in_progress", in_progress_at=1201), now=1300.0)
        # A service without finalizing_at: counted from when batchd first saw the status.
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2000.0)
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2099.0)
        watch.check(_part(), _batch("finalizing", finalizing_at=None), now=2101.0)
        watch.check(_part(), _batch("completed", completed_at=2102), now=2102.0)
    assert [(e["status"], e["seconds"]) for e in captured if e["event"] == "batch_stuck"] == [
        ("validating", 101),
        ("finalizing", 101),
    ]
    assert watch._seen == {}  # a finished batch is forgotten


@pytest.mark.parametrize("key", ["stuck_validating_after", "stuck_finalizing_after", "stuck_cancelling_after"])
def test_thresholds_must_be_positive(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(environ={f"BATCHD_{key.upper()}": "0"})
    assert getattr(load_settings(environ={f"BATCHD_{key.upper()}": "90"}), key) == 90.0
    assert getattr(load_settings(environ={}), key) == 3600.0
