"""Injected transport faults, changeable at runtime from Python (`server.faults`) or over HTTP.

Three kinds, all bounded:
  * a random error rate: that fraction of API requests (seeded RNG) answers `error_status`
    without being processed, at most `error_count` times (None = no cap);
  * a random malformed-reply rate: that fraction of API requests other than file downloads is
    carried out and then answered 200 with one of MALFORMED_REPLIES, at most `reply_count` times;
  * rules, each matching method + path prefix and firing `count` times, then spent:
      - "status": answer `status` (with Retry-After when given);
      - "drop": close the connection without any response;
      - "slow": wait `delay` seconds (cut short when the server stops), then answer normally;
      - "drop_midway": send the headers with the full Content-Length and half the body, then close;
      - "tamper": answer a file download (GET .../content, or Anthropic's .../results) with a 200
        whose body is changed as `mode` says (see tampering.py), `lines` lines at a time where that
        applies.
      - "reply": answer `status` (200 unless given) with the raw `body` as `content_type`: a
        malformed reply (`{"id": 5}`, an HTML page) that a client must not take for an answer.
      - "hold": wait until `release()` (or the server stops, or `delay` seconds pass when given,
        else HOLD_LIMIT), then answer normally: a call a test keeps in flight as long as it likes.
    A rule with `min_bytes` matches only requests whose body is at least that long (a big upload).
    With `after_processing` the request is executed first (a batch or file IS created) and only
    then the response is replaced: the lost-response case behind duplicate batches. "slow" with
    `after_processing` executes first and then waits; "drop_midway" always executes.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.emulator.tampering import TAMPER_MODES

ACTIONS = ("status", "drop", "slow", "drop_midway", "tamper", "reply", "hold")
HOLD_LIMIT = 60.0  # seconds a "hold" without a delay waits at most for release()
# An omitted status (0) means 200 for "reply" and 500 for every other action.
DEFAULT_STATUS = {"reply": 200}


# Paths of result downloads: OpenAI's file content and Anthropic's Message Batch results.
DOWNLOAD_SUFFIXES = ("/content", "/results")

# What a quirky or broken server has been seen to send with a 200: (content type, body).
MALFORMED_REPLIES = (
    ("application/json", '{"id": 5}'),
    ("text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("application/json", "<html><body>upstream error</body></html>"),
    ("application/json", ""),
    ("application/json", '{"object": "list", "data": 5}'),
    ("application/json", '{"id": "batch_x", "status": ["completed"], "created_at": "now"}'),
)


def api_path(path: str) -> str:
    """Paths are matched and logged with the /v1 prefix, whichever form the client used."""
    if path.startswith(("/v1/", "/_emulator")) or path == "/v1":
        return path
    return "/v1" + path


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(slots=True)
class FaultRule:
    action: str
    method: str | None = None
    path_prefix: str = ""
    status: int = 0
    retry_after: float | None = None
    retry_after_ms: int | None = None
    after_processing: bool = False
    delay: float = 0.0
    count: int = 1
    message: str | None = None
    mode: str | None = None  # "tamper" only, and required there: how the downloaded file is changed
    lines: int = 1  # "tamper" only: lines dropped, added or repeated
    body: str = ""
    content_type: str = "application/json"
    min_bytes: int = 0  # match only requests whose body has at least this many bytes

    def __post_init__(self) -> None:
        # Rules also arrive as JSON over HTTP, so the types are checked, not trusted.
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; expected one of {', '.join(ACTIONS)}")
        if self.status == 0:
            self.status = DEFAULT_STATUS.get(self.action, 500)
        check_raw_reply(self.body, self.content_type)
        if not _is_int(self.count) or self.count < 1:
            raise ValueError("count must be an integer >= 1")
        if not _is_int(self.status) or not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if not _is_number(self.delay) or self.delay < 0:
            raise ValueError("delay must be a number >= 0")
        if not (self.retry_after is None or (_is_number(self.retry_after) and self.retry_after >= 0)):
            raise ValueError("retry_after must be a number of seconds >= 0")
        if not (self.retry_after_ms is None or (_is_int(self.retry_after_ms) and self.retry_after_ms >= 0)):
            raise ValueError("retry_after_ms must be an integer >= 0")
        if not isinstance(self.after_processing, bool):
            raise ValueError("after_processing must be true or false")
        if (self.action == "tamper" or self.mode is not None) and self.mode not in TAMPER_MODES:
            raise ValueError(f"unknown tamper mode {self.mode!r}; expected one of {', '.join(TAMPER_MODES)}")
        if not _is_int(self.lines) or self.lines < 1:
            raise ValueError("lines must be an integer >= 1")
        self._check_hold_and_size()
        self.method = self.method.upper() if self.method else None
        self.path_prefix = api_path(self.path_prefix) if self.path_prefix else ""

    def _check_hold_and_size(self) -> None:
        if not _is_int(self.min_bytes) or self.min_bytes < 0:
            raise ValueError("min_bytes must be an integer >= 0")
        if self.action == "hold" and self.after_processing:
            raise ValueError("a hold comes before processing; after_processing must be false")

    def matches(self, method: str, path: str, size: int = 0) -> bool:
        if self.action == "tamper" and not path.endswith(DOWNLOAD_SUFFIXES):
            return False  # only file downloads are tampered with, never listings or metadata
        return (
            (self.method is None or self.method == method)
            and path.startswith(self.path_prefix)
            and size >= self.min_bytes
        )

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = format_seconds(self.retry_after)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        return headers

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        if not isinstance(data, Mapping):
            raise ValueError("a fault rule must be a JSON object")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault rule field {unknown[0]!r}")
        if "action" not in data:
            raise ValueError("a fault rule needs an 'action'")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(str(error)) from error


def check_raw_reply(body: object, content_type: object) -> None:
    if not isinstance(body, str):
        raise ValueError("body must be a string")
    # The content type becomes a header line: no control characters may split it.
    if not isinstance(content_type, str) or not content_type or not content_type.isprintable():
        raise ValueError("content_type must be a non-empty printable string")


def check_reply_rate(rate: object, count: object) -> None:
    # Also reached with JSON from the control endpoint: any type may arrive.
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise ValueError("reply_rate must be between 0 and 1")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError("reply_count must be an integer >= 0 or null")


def check_error_rate(rate: float, status: int, count: int | None) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError("error_rate must be between 0 and 1")
    if not 400 <= status <= 599:
        raise ValueError("error_status must be a 4xx or 5xx status")
    if count is not None and (not isinstance(count, int) or count < 0):
        raise ValueError("error_count must be an integer >= 0 or null")


class FaultPlan:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._error_rate = 0.0
        self._error_status = 500
        self._error_count: int | None = None
        self._reply_rate = 0.0
        self._reply_count: int | None = None
        self._fired = 0
        self._released = threading.Event()
        self._holding = 0

    def set_error_rate(self, rate: float, status: int = 500, count: int | None = None) -> None:
        """Fail `rate` of all API requests with `status`, at most `count` times (None = no cap)."""
        check_error_rate(rate, status, count)
        with self._lock:
            self._error_rate, self._error_status, self._error_count = rate, status, count

    def set_reply_rate(self, rate: float, count: int | None = None) -> None:
        """Answer `rate` of the API requests (downloads excepted) with a malformed 200, after
        carrying them out; at most `count` times (None = no cap)."""
        check_reply_rate(rate, count)
        with self._lock:
            self._reply_rate, self._reply_count = rate, count

    def add_rule(self, rule: FaultRule | None = None, /, **fields: Any) -> FaultRule:
        """Append a rule, given as a FaultRule or as its fields: add_rule(action="drop", path_prefix="/files")."""
        new_rule = rule if rule is not None else FaultRule(**fields)
        with self._lock:
            self._rules.append(new_rule)
        return new_rule

    def clear(self) -> None:
        """Remove all rules and switch the error rate off."""
        with self._lock:
            self._rules.clear()
            self._error_rate, self._error_status, self._error_count = 0.0, 500, None
            self._reply_rate, self._reply_count = 0.0, None

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [dataclasses.replace(rule) for rule in self._rules]

    @property
    def fired(self) -> int:
        """How many faults have been injected so far."""
        with self._lock:
            return self._fired

    def hold(self, limit: float) -> None:
        """Keep a request waiting until release() (or ``limit`` seconds, or HOLD_LIMIT when 0)."""
        with self._lock:
            self._holding += 1
        try:
            self._released.wait(limit or HOLD_LIMIT)
        finally:
            with self._lock:
                self._holding -= 1

    def release(self) -> None:
        """Let every held request go on, and every later "hold" pass at once."""
        self._released.set()

    @property
    def holding(self) -> int:
        """How many requests are being held now."""
        with self._lock:
            return self._holding

    def decide(self, method: str, path: str, size: int = 0) -> FaultRule | None:
        """The fault for this request (with a body of ``size`` bytes), if any; consumes one use of it."""
        with self._lock:
            fault = self._take_rule(method, api_path(path), size) or self._roll_error() or self._roll_reply(path)
            if fault is not None:
                self._fired += 1
            return fault

    def _take_rule(self, method: str, path: str, size: int) -> FaultRule | None:
        for rule in self._rules:
            if rule.matches(method, path, size):
                rule.count -= 1
                if rule.count == 0:
                    self._rules.remove(rule)
                return dataclasses.replace(rule, count=1)
        return None

    def _roll_error(self) -> FaultRule | None:
        if self._error_rate <= 0 or self._error_count == 0 or self._rng.random() >= self._error_rate:
            return None
        if self._error_count is not None:
            self._error_count -= 1
        return FaultRule(action="status", status=self._error_status, message="Emulated random server error.")

    def _roll_reply(self, path: str) -> FaultRule | None:
        # Downloads are left alone: tampered output files are a fault of their own.
        if self._reply_rate <= 0 or self._reply_count == 0 or path.endswith(DOWNLOAD_SUFFIXES):
            return None
        if self._rng.random() >= self._reply_rate:
            return None
        if self._reply_count is not None:
            self._reply_count -= 1
        content_type, body = self._rng.choice(MALFORMED_REPLIES)
        return FaultRule(action="reply", body=body, content_type=content_type, after_processing=True)

    def apply(self, config: Mapping[str, Any]) -> None:
        """Apply a control payload; everything is validated before anything changes.

        `{"clear": true}` first removes all rules and the random rates; `error_rate`, `error_status`
        and `error_count` replace the random-error settings, `reply_rate` and `reply_count` the
        random malformed replies; `rules` (FaultRule fields) are appended.
        """
        known = {"clear", "error_rate", "error_status", "error_count", "rules", "reply_rate", "reply_count"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown fault setting {unknown[0]!r}")
        raw_rules = config.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ValueError("'rules' must be a list")
        rules = [FaultRule.from_json(raw) for raw in raw_rules]
        errors = self._error_settings(config)
        replies = self._reply_settings(config)
        with self._lock:
            if config.get("clear"):
                self._rules.clear()
            self._error_rate, self._error_status, self._error_count = errors
            self._reply_rate, self._reply_count = replies
            self._rules.extend(rules)

    def _error_settings(self, config: Mapping[str, Any]) -> tuple[float, int, int | None]:
        with self._lock:
            current = (self._error_rate, self._error_status, self._error_count)
        if config.get("clear"):
            current = (0.0, 500, None)
        try:
            rate = float(config.get("error_rate", current[0]))
            status = int(config.get("error_status", current[1]))
        except (TypeError, ValueError) as error:
            raise ValueError("error_rate and error_status must be numbers") from error
        count = config.get("error_count", current[2])
        check_error_rate(rate, status, count)
        return rate, status, count

    def _reply_settings(self, config: Mapping[str, Any]) -> tuple[float, int | None]:
        with self._lock:
            current = (0.0, None) if config.get("clear") else (self._reply_rate, self._reply_count)
        rate, count = config.get("reply_rate", current[0]), config.get("reply_count", current[1])
        check_reply_rate(rate, count)
        return float(rate), count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "error_rate": self._error_rate,
                "error_status": self._error_status,
                "error_count": self._error_count,
                "reply_rate": self._reply_rate,
                "reply_count": self._reply_count,
                "fired": self._fired,
                "rules": [rule.to_json() for rule in self._rules],
            }
