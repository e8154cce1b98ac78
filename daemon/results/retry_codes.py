"""Failed requests sent again by themselves: those whose error code is in ``retry_failed_codes``.

A failed request is its outcome (results.jsonl reports it) unless the user lists its error code,
as summary.json's ``failures`` names it (``describe``): e.g. Anthropic's ``overloaded_error``. Such
a request goes again with the batch's unfinished ones, in a new part of the same job; one that
succeeded in any line is never sent again.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from daemon.intake.line_reader import CEILING, LongLine, read_lines
from daemon.results.failures import describe
from daemon.results.outcome import FAILED, SUCCEEDED, rank
from daemon.results.verification import json_object


def retryable_ids(downloads: Iterable[Path], codes: frozenset[str]) -> set[str]:
    """custom_ids of ``downloads`` that failed with one of ``codes`` and succeeded nowhere."""
    if not codes:
        return set()
    failed: set[str] = set()
    succeeded: set[str] = set()
    for path in downloads:
        if not path.exists():
            continue
        with open(path, "rb") as fh:
            for _, raw in read_lines(fh, CEILING):
                line = None if isinstance(raw, LongLine) else json_object(raw)
                custom_id = line.get("custom_id") if line is not None else None
                if line is None or not isinstance(custom_id, str):
                    continue
                outcome = rank(line)
                if outcome == SUCCEEDED:
                    succeeded.add(custom_id)
                elif outcome == FAILED and describe(line)[0] in codes:
                    failed.add(custom_id)
    return failed - succeeded
