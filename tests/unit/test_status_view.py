"""`batchd status`: progress over every attempt, and `--watch` until Ctrl-C."""

from __future__ import annotations

import io
import threading

from daemon.cli.status import watch
from daemon.errors import DaemonError


def test_watch_redraws_until_stopped() -> None:
    stop = threading.Event()
    frames: list[int] = []

    def frame() -> str:
        frames.append(1)
        if len(frames) == 2:
            raise DaemonError("no state database yet")
        if len(frames) == 3:
            stop.set()
        return f"frame {len(frames)}"

    out = io.StringIO()
    assert watch(frame, stop, 0.01, out, clear=False, header=True) == 3
    text = out.getvalue()
    assert text.count("batchd status at") == 3
    assert "frame 1" in text and "batchd: no state database yet" in text and "frame 3" in text


def test_watch_json_is_one_document_per_line() -> None:
    stop = threading.Event()
    out = io.StringIO()

    def frame() -> str:
        stop.set()
        return '{"jobs": []}'

    watch(frame, stop, 0.01, out, clear=False, header=False)
    assert out.getvalue() == '{"jobs": []}\n'
