"""Failed and not-run requests grouped by error code, for summary.json.

Memory is bounded whatever the results hold: a count and one sample message per code, and at
most ``MAX_CODES`` codes (a server inventing a code per line cannot grow it); the rest are
counted under ``OTHER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from daemon.intake.line_reader import CEILING, LongLine, read_lines
from daemon.results.anthropic_results import described_result
from daemon.results.outcome import SUCCEEDED, rank
from daemon.results.usage import response_body

MAX_CODES = 50
SAMPLE_CHARS = 300  # a sample names the problem; the whole message is in results.jsonl
CODE_CHARS = 100
OTHER = "other"


@dataclass(slots=True)
class FailureTally:
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_line(self, raw: bytes) -> None:
        try:
            line: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(line, dict):
            return
        if rank(line) != SUCCEEDED:
            self.add(*describe(line))

    def add(self, code: str, message: str) -> None:
        if code not in self.codes and len(self.codes) >= MAX_CODES:
            code = OTHER
        entry = self.codes.setdefault(code, {"count": 0, "sample": message[:SAMPLE_CHARS]})
        entry["count"] += 1


def describe(line: dict[str, Any]) -> tuple[str, str]:
    """(error code, message) of a line that did not succeed, from its error or its response body."""
    error = line.get("error")
    if isinstance(error, dict):  # an OpenAI error, or batchd's own code beside an Anthropic result
        return _code(error, "error"), _text(error.get("message"))
    result = line.get("result")
    if isinstance(result, dict) and "response" not in line:
        return described_result(result)
    if isinstance(error, str) and error:
        return "error", error
    response = line.get("response")
    if not isinstance(response, dict):
        return "no_response", "The line has neither a response nor an error."
    status = response.get("status_code")
    fallback = f"http_{status}" if isinstance(status, int) else "no_status"
    body_error = response_body(response).get("error")
    if isinstance(body_error, dict):
        return _code(body_error, fallback), _text(body_error.get("message"))
    return fallback, f"The endpoint answered HTTP {status} without an error object."


def _code(error: dict[str, Any], fallback: str) -> str:
    for key in ("code", "type"):
        value = error.get(key)
        if isinstance(value, str) and value:
            return value[:CODE_CHARS]
    return fallback


def _text(message: Any) -> str:
    return message if isinstance(message, str) else ""


def results_failures(path: Path) -> dict[str, dict[str, Any]]:
    """Code -> {count, sample} over every line of a results file, most frequent first."""
    tally = FailureTally()
    if path.exists():
        with open(path, "rb") as fh:
            for _, raw in read_lines(fh, CEILING):
                if not isinstance(raw, LongLine):  # too big to read: described by nothing, like a mangled line
                    tally.add_line(raw)
    return dict(sorted(tally.codes.items(), key=lambda item: -int(item[1]["count"])))
