"""Streaming validation of a request file, line by line, with line numbers.

Nothing is uploaded before a file passes. Each line must be a JSON object with a unique string
``custom_id``, ``method`` POST, a Batch API ``url`` (the same on every line) and a ``body``
object naming one ``model`` (the same on every line, unless ``split_by_model`` lets each model's
lines go in batches of their own). The endpoint is taken from the lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from daemon import limits
from daemon.intake.body_rules import body_problem
from daemon.intake.id_register import IdRegister
from daemon.intake.line_reader import LineSource, LongLine, content_length, is_blank, iter_lines, read_lines
from daemon.intake.problem_groups import ProblemGroups

__all__ = ["LineSource", "iter_lines"]  # where the results and the CLI have always imported them from

MAX_LISTED_PROBLEMS = 100
EMBEDDINGS_URLS = frozenset({limits.EMBEDDINGS_ENDPOINT, limits.EMBEDDINGS_ENDPOINT.removeprefix("/v1")})
BOM = b"\xef\xbb\xbf"
# The most models one input may name with split_by_model: the splitter's routes file gives each
# request's model in one byte, and each model keeps a part file open while the input is split.
MAX_MODELS = 64
SPLIT_HINT = "set split_by_model = true to send one batch per model"


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_requests: int = limits.MAX_REQUESTS_PER_BATCH
    max_bytes: int = limits.MAX_BYTES_PER_BATCH
    max_embedding_inputs: int = limits.MAX_EMBEDDING_INPUTS_PER_BATCH
    # Estimated input tokens (Request.est_tokens); None = no budget. Not an API limit of a batch: it
    # keeps each batch under the model's enqueued-token queue limit, which a bigger batch never fits.
    max_tokens: int | None = None
    # The longest line read at all (line ending not counted); a longer one is streamed past, not held.
    max_line_bytes: int = limits.DEFAULT_MAX_LINE_BYTES
    # The line `url` values the service takes (Profile.url_forms: Azure's also without /v1).
    urls: frozenset[str] = limits.ENDPOINTS
    line_format: str = "openai"  # the line shape checked: "openai", or "anthropic" (intake/line_formats.py)
    # Lines may name several models (split_by_model): each model's lines go in parts of their own.
    split_models: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """What splitting needs to know about one valid line."""

    line_no: int
    data: bytes  # the line, normalised: no CR, ending in one LF
    custom_id: str
    embedding_inputs: int
    est_tokens: int
    model: str = ""  # the model the line names (its parts are that model's when split_by_model)


@dataclass(slots=True)
class ModelShare:
    """One model's share of a file: its requests and their estimated input tokens."""

    requests: int = 0
    est_tokens: int = 0


@dataclass(slots=True)
class Findings:
    """What a pass over a file found: the problems (first 100 kept) and the file's shape."""

    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_count: int = 0
    requests: int = 0
    endpoint: str | None = None
    model: str | None = None  # the first model named (the only one, unless split_by_model)
    models: dict[str, ModelShare] = field(default_factory=dict)  # every model named, in order of first use
    bytes_read: int = 0
    groups: ProblemGroups = field(default_factory=ProblemGroups)  # identical problems, counted together

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, line_no: int, message: str) -> None:
        self.problem_count += 1
        self.groups.add(line_no, message)
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append((line_no, message))

    def add_earlier(self, found: list[tuple[int, str]], count: int) -> None:
        """Add ``count`` problems found after the pass (the first of them in ``found``), each in its
        line's place and first on it, as if found in the pass: the same list either way."""
        self.problem_count += count
        for line_no, message in found:
            self.groups.add(line_no, message)
        self.problems = sorted([*found, *self.problems], key=lambda problem: problem[0])[:MAX_LISTED_PROBLEMS]


class LineChecker:
    """Checks lines one at a time; remembers what must agree across lines."""

    def __init__(self, batch_limits: BatchLimits, id_hash: Callable[[str], int] = hash) -> None:
        self.limits = batch_limits
        self.findings = Findings()
        self._ids = IdRegister(id_hash)
        self._candidate_line = 0  # the last line whose custom_id's hash was seen before
        self._endpoint_line = 0
        self._model_line = 0
        self.repeated_lines: list[int] | None = None  # a list: every line whose custom_id repeats is added

    def check(self, line_no: int, raw: bytes | LongLine) -> Request | None:
        """Return the request on this line, or None (blank line, or a problem was recorded)."""
        if isinstance(raw, LongLine):
            self.findings.add(line_no, long_line_problem(raw, self.limits.max_line_bytes))
            return None
        if is_blank(raw) or self._file_problem(line_no, raw):
            return None
        size = content_length(raw) + 1  # as uploaded: ending in one LF
        if size > self.limits.max_bytes:
            self.findings.add(line_no, f"line is {size:,} bytes, over the {self.limits.max_bytes:,}-byte batch limit")
            return None
        obj = self._parse(line_no, raw)
        found = None if obj is None else self._check_object(line_no, obj)
        del obj  # a long line's parse is let go before its normalised copy (if one is needed) is made
        if found is None:
            return None
        data = raw if len(raw) == size and raw.endswith(b"\n") else raw.rstrip(b"\r\n") + b"\n"
        custom_id, inputs, model = found
        est_tokens = max(1, size // 4)
        share = self.findings.models.setdefault(model, ModelShare())
        share.requests, share.est_tokens = share.requests + 1, share.est_tokens + est_tokens
        return Request(line_no, data, custom_id, inputs, est_tokens, model)

    def _file_problem(self, line_no: int, raw: bytes) -> bool:
        """Whether this line is taken up by a problem of the whole file: a BOM, one JSON array."""
        groups = self.findings.groups
        if groups.whole_document:
            return True
        groups.lines += 1
        if groups.lines == 1 and _opens_array(raw):
            groups.whole_document = True  # one problem for the file, not one per line of the array
            self.findings.add(0, JSON_ARRAY_PROBLEM)
            return True
        if line_no == 1 and raw.startswith(BOM):
            self.findings.add(1, "the file starts with a UTF-8 byte order mark (BOM); save it as UTF-8 without BOM")
            return True
        return False

    def _parse(self, line_no: int, line: bytes) -> dict[str, Any] | None:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.findings.add(line_no, _json_problem(line, exc))
            return None
        if not isinstance(obj, dict):
            self.findings.add(line_no, f"line must be a JSON object, got {_kind(obj)}")
            return None
        return obj

    def _check_object(self, line_no: int, obj: dict[str, Any]) -> tuple[str, int, str] | None:
        """(custom_id, embedding inputs, model) of a valid request, or None (problems were recorded)."""
        if "model" in obj and not obj.keys() & {"custom_id", "method", "url", "body"}:
            self.findings.groups.note_bare(obj)
            self.findings.add(line_no, BARE_BODY_HINT)  # the seed script's example format
            return None
        before = self.findings.problem_count
        custom_id = self._check_custom_id(line_no, obj.get("custom_id", _MISSING))
        self._check_method(line_no, obj.get("method", _MISSING))
        self._check_url(line_no, obj.get("url", _MISSING))
        body = self._check_body(line_no, obj.get("body", _MISSING), obj.get("url"))
        if self.findings.problem_count != before or custom_id is None or body is None:
            return None
        self.findings.requests += 1
        if line_no == self._candidate_line:
            self._ids.count_candidate(line_no)
        inputs = _embedding_inputs(body) if obj["url"] in EMBEDDINGS_URLS else 0
        if inputs > self.limits.max_embedding_inputs:
            self.findings.add(line_no, f"request has {inputs:,} embedding inputs, over the batch limit")
            return None
        return custom_id, inputs, body["model"]

    def _check_custom_id(self, line_no: int, value: object) -> str | None:
        if value is _MISSING:
            self.findings.add(line_no, "custom_id is missing; every line needs a unique string custom_id")
        elif not isinstance(value, str):
            self.findings.add(line_no, f"custom_id must be a string, got {_kind(value)}")
        elif not value:
            self.findings.add(line_no, "custom_id is empty")
        else:
            if not self._ids.add(value, line_no):  # a repeat is only known for sure after the pass (settle_ids)
                self._candidate_line = line_no
            return value
        return None

    def settle_ids(self, source: LineSource, start: int) -> None:
        """Report each custom_id used again, reading the candidate lines again from ``source``."""
        found: list[tuple[int, str]] = []
        count = 0
        for line_no, custom_id, first in self._ids.settle(source, start):
            count += 1
            self.findings.requests -= self._ids.was_counted(line_no)
            if self.repeated_lines is not None:
                self.repeated_lines.append(line_no)
            if len(found) < MAX_LISTED_PROBLEMS:
                found.append((line_no, f"custom_id {custom_id!r} is already used on line {first}"))
        if count:
            self.findings.add_earlier(found, count)

    def _check_method(self, line_no: int, value: object) -> None:
        if value != "POST":
            got = "missing" if value is _MISSING else repr(value)
            self.findings.add(line_no, f'method must be "POST" (got {got})')

    def _check_url(self, line_no: int, value: object) -> None:
        f = self.findings
        if value is _MISSING or not isinstance(value, str):
            f.add(line_no, "url is missing or not a string; use the endpoint path, e.g. /v1/chat/completions")
        elif value not in self.limits.urls:
            f.add(line_no, url_problem(value, self.limits.urls))
        elif f.endpoint is None:
            f.endpoint, self._endpoint_line = value, line_no
        elif value != f.endpoint:
            f.add(
                line_no,
                f"url {value!r} differs from {f.endpoint!r} on line {self._endpoint_line}; one file, one endpoint",
            )

    def _check_body(self, line_no: int, body: object, url: object) -> dict[str, Any] | None:
        f = self.findings
        if not isinstance(body, dict):
            f.add(line_no, _body_problem(body))
            return None
        model = body.get("model")
        if not isinstance(model, str) or not model:
            f.add(line_no, "body.model is missing or not a string; every request must name its model")
            return None
        problem = body_problem(url, body) if isinstance(url, str) and url in self.limits.urls else None
        if problem is not None:
            f.add(line_no, problem)
            return None
        return body if self.model_fits(line_no, model) else None

    def model_fits(self, line_no: int, model: str) -> bool:
        """Whether a line may name ``model``: the file's one model, or (``split_models``) any of up
        to MAX_MODELS; a problem is recorded if not."""
        f = self.findings
        if f.model is None:
            f.model, self._model_line = model, line_no
        elif model == f.model or model in f.models:
            return True
        elif not self.limits.split_models:
            f.add(
                line_no,
                f"model {model!r} differs from {f.model!r} on line {self._model_line}; one file, one model "
                f"({SPLIT_HINT})",
            )
            return False
        elif len(f.models) >= MAX_MODELS:
            f.add(
                line_no,
                f"model {model!r} would be model number {MAX_MODELS + 1} of this file; split_by_model takes at "
                f"most {MAX_MODELS} models per input: split the file by model",
            )
            return False
        return True

    def finish(self) -> Findings:
        if self.findings.requests == 0 and self.findings.problem_count == 0:
            what = (
                "the file is empty" if self.findings.bytes_read == 0 else "the file holds no requests, only blank lines"
            )
            self.findings.add(0, what)
        return self.findings


_MISSING: Any = object()
# No example url here: the line's own fields say which endpoint it is for, and the Fix line under the
# grouped problem (reports.py) names it; a made-up "/v1/..." beside a chat body only misled.
BARE_BODY_HINT = (
    "this line is a bare request body, not a Batch API request; it needs a custom_id, "
    '"method": "POST", the endpoint\'s "url" and the body under "body" (batchd wrap adds them)'
)
JSON_ARRAY_PROBLEM = (
    "this file is one JSON array, not JSON Lines (one request object per line); batchd wrap writes it as JSON Lines"
)


def _opens_array(raw: bytes) -> bool:
    """Whether a file's first line opens a JSON array of objects: a pretty-printed one (the line
    alone is no JSON) or a whole array on one line. ``[1, 2]`` is only a bad line."""
    if not raw.lstrip().startswith(b"["):
        return False
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def long_line_problem(line: LongLine, max_line_bytes: int) -> str:
    return (
        f"line is {line.length:,} bytes, over the {max_line_bytes:,}-byte line limit, so it was not read; "
        "shorten the request (e.g. image URLs instead of base64 images) or raise max_line_bytes in the config "
        f"(at most {limits.MAX_BYTES_PER_BATCH:,})"
    )


def _body_problem(body: object) -> str:
    return "body is missing" if body is _MISSING else f"body must be a JSON object, got {_kind(body)}"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _json_problem(line: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 (byte 0x{line[bad.start]:02x} at column {bad.start + 1}); save the file as UTF-8"
    return f"not valid JSON ({exc}); was the line cut short or joined with another?"


def _embedding_inputs(body: dict[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)  # a list of strings, or a list of token lists
    return 1


class HashingReader:
    """Reads lines from a binary file while hashing every byte read, so an input is checked and
    fingerprinted in one pass instead of two (a second read of a 2 GB file is not free)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()
        self.size = 0

    def readline(self, size: int = -1, /) -> bytes:
        data = self._fh.readline(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    # Only readline moves the fingerprint on: a long line is read again after a seek back
    # (line_reader), and those bytes were already hashed on the way forward.
    def read(self, size: int = -1, /) -> bytes:
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def normalise(raw: bytes) -> bytes | None:
    """A line as it is uploaded (no CR, ending in one LF), or None for a blank line, which is skipped."""
    if is_blank(raw):
        return None
    if raw.endswith(b"\n") and not raw.endswith(b"\r\n"):
        return raw  # already so: a long line is not copied
    return raw.rstrip(b"\r\n") + b"\n"


def iter_normalised(fh: LineSource) -> Iterator[bytes]:
    """The request lines of a file that passed validation, normalised: the same lines whether it is
    the input itself or a part file written from it."""
    for _, raw in iter_lines(fh):
        data = normalise(raw)
        if data is not None:
            yield data


def iter_requests(fh: LineSource, checker: LineChecker) -> Iterator[Request]:
    """Yield each valid request in order; problems accumulate in ``checker.findings``. A repeated
    custom_id is only known after the last line (settle_ids): read the findings after the loop."""
    start = fh.tell()
    for line_no, raw in read_lines(fh, checker.limits.max_line_bytes):
        checker.findings.bytes_read += raw.size if isinstance(raw, LongLine) else len(raw)
        request = checker.check(line_no, raw)
        if request is not None:
            yield request
    checker.settle_ids(fh, start)


def url_problem(value: str, urls: frozenset[str]) -> str:
    """Why a line's url is refused, and what to write instead."""
    problem = f"url {value!r} is not a Batch API endpoint; use one of {', '.join(sorted(urls))}"
    if "/v1" + value in urls:
        return f"{problem} (the form without /v1 is Azure's; a profile of kind azure accepts it)"
    return problem


def validate_file(path: Path, batch_limits: BatchLimits | None = None) -> Findings:
    """Run every check over ``path`` without writing anything (``batchd validate``)."""
    checker = LineChecker(batch_limits or BatchLimits())
    with open(path, "rb") as fh:
        for _ in iter_requests(fh, checker):
            pass
    return checker.finish()


def embedding_inputs(line: dict[str, Any]) -> int:
    """What one valid request line counts against the batch's embedding-input limit."""
    return _embedding_inputs(line["body"]) if line.get("url") in EMBEDDINGS_URLS else 0
