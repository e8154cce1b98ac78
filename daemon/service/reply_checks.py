"""Checks on what the OpenAI service sends back: every id and field batchd reads, in one place.

Part of the seam's OpenAI implementation (``openai_service``), which converts what passed to
batchd's own dataclasses.

The SDK builds its models without validation, so a 200 reply can put any type in any field (a
file id of ``5``), or be no object at all (an HTML page comes back as a ``str``). Such a reply is
a fault of the service, never a verdict on the input: it raises ``MalformedReplyError``, whose
message names the call and the field, and never quotes the reply (it could carry anything).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard, TypeVar, get_args

import pydantic
from openai import BaseModel
from openai.pagination import SyncCursorPage
from openai.types import Batch, FileObject

from daemon.errors import MalformedReplyError
from daemon.service.batch_info import BATCH_STAMPS

M = TypeVar("M", bound=BaseModel)

# Ids go into URL paths and into local file names (``{batch_id}_output.jsonl``): no '/', no
# whitespace, nothing a URL or a shell treats specially, no leading dot, and of bounded length.
ID_FORM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+~-]{0,255}")
STATUS_FORM = re.compile(r"[a-z][a-z_]{0,63}")
KNOWN_STATUSES = frozenset(get_args(Batch.model_fields["status"].annotation))
BATCH_TIMES = ("created_at", *BATCH_STAMPS)
ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and ID_FORM.fullmatch(value) is not None


def checked_id(value: object, call: str, field: str) -> str:
    if not is_id(value):
        raise MalformedReplyError(call, f"{field} is not a valid id ({_kind(value)})")
    return value


def _object(value: object, model: type[M], call: str, what: str) -> M:
    if not isinstance(value, model):
        raise MalformedReplyError(call, f"{what} is not a {model.__name__} object ({_kind(value)})")
    return value


def _require(ok: bool, call: str, field: str, value: object, expected: str) -> None:
    if not ok:
        raise MalformedReplyError(call, f"{field} is not {expected} ({_kind(value)})")


def checked_file(value: object, call: str, what: str = "the reply") -> FileObject:
    """A file object whose id, filename and created_at (ISO 8601 text read as seconds) batchd can use."""
    file = _object(value, FileObject, call, what)
    if isinstance(file.created_at, str) and (seconds := epoch_seconds(file.created_at)) is not None:
        file = file.model_copy(update={"created_at": seconds})
    checked_id(file.id, call, "id")
    _require(isinstance(file.filename, str), call, "filename", file.filename, "a string")
    _require(is_int(file.created_at), call, "created_at", file.created_at, "an integer")
    return file


def tolerated(value: object) -> object:
    """A batch in OpenAI's own dialect: compatible services write a known status in upper case
    (``COMPLETED``, Novita) and every ``*_at`` as ISO 8601 text (Together). Anything else (an
    unknown upper-case status, a time that is no ISO date) is left as sent, for the checks to refuse."""
    if not isinstance(value, Batch):
        return value
    update: dict[str, object] = {}
    status = value.status
    if isinstance(status, str) and status != status.lower() and status.lower() in KNOWN_STATUSES:
        update["status"] = status.lower()
    for field in BATCH_TIMES:
        stamp = getattr(value, field, None)
        if isinstance(stamp, str) and (seconds := epoch_seconds(stamp)) is not None:
            update[field] = seconds
    return value.model_copy(update=update) if update else value


def epoch_seconds(text: str) -> int | None:
    """Unix seconds of an ISO 8601 date and time (UTC when it names no offset), None if it is not
    one. A date alone names no moment: it is refused like any other text."""
    if ISO_MOMENT.fullmatch(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def checked_batch(value: object, call: str, what: str = "the reply") -> Batch:
    """A batch whose every field batchd reads has the type (and ids the form) it expects, once
    read in OpenAI's dialect (``tolerated``)."""
    batch = _object(tolerated(value), Batch, call, what)
    checked_id(batch.id, call, "id")
    status = batch.status
    _require(isinstance(status, str) and STATUS_FORM.fullmatch(status) is not None, call, "status", status, "a status")
    _require(is_int(batch.created_at), call, "created_at", batch.created_at, "an integer")
    for field in BATCH_TIMES[1:]:
        stamp = getattr(batch, field, None)
        _require(stamp is None or is_int(stamp), call, field, stamp, "an integer or null")
    for field in ("input_file_id", "output_file_id", "error_file_id"):
        file_id = getattr(batch, field, None)
        # Azure sends "" for a file that does not exist (yet).
        _require(file_id in (None, "") or is_id(file_id), call, field, file_id, "a valid id, empty or null")
    for field in ("endpoint", "model"):
        text = getattr(batch, field, None)
        _require(text is None or isinstance(text, str), call, field, text, "a string or null")
    _check_counts(batch, call)
    _check_metadata(batch.metadata, call)
    _check_errors(batch, call)
    _check_readable_back(batch, call)
    return batch


def _check_counts(batch: Batch, call: str) -> None:
    counts = batch.request_counts
    if counts is None:
        return
    _require(isinstance(counts, BaseModel), call, "request_counts", counts, "an object")
    for name in ("total", "completed", "failed"):
        count = getattr(counts, name, None)
        _require(is_int(count) and count >= 0, call, f"request_counts.{name}", count, "a count")


def metadata_readable(meta: object) -> bool:
    return meta is None or (
        isinstance(meta, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    )


def _check_metadata(meta: object, call: str) -> None:
    _require(metadata_readable(meta), call, "metadata", meta, "an object of strings")


def _check_errors(batch: Batch, call: str) -> None:
    errors: Any = batch.errors
    if errors is None:
        return
    _require(isinstance(errors, BaseModel), call, "errors", errors, "an object")
    data = getattr(errors, "data", None)
    _require(data is None or isinstance(data, list), call, "errors.data", data, "a list")
    for error in data or []:
        _require(isinstance(error, BaseModel), call, "errors.data[]", error, "an object")
        for name in ("code", "message", "param"):
            text = getattr(error, name, None)
            _require(text is None or isinstance(text, str), call, f"errors.data[].{name}", text, "a string or null")
        line = getattr(error, "line", None)
        _require(line is None or is_int(line), call, "errors.data[].line", line, "an integer or null")


def _check_readable_back(batch: Batch, call: str) -> None:
    """Every other field must pass the SDK's strict model too, so the conversion to batchd's own
    ``BatchInfo`` (and reading back a row stored by an earlier version) never meets a field it
    cannot read. An unknown status is the one exception: it is polled on with a warning, and the
    statuses that end a batch are all known ones."""
    data = batch.model_dump(mode="json", warnings=False)
    if data.get("status") not in KNOWN_STATUSES:
        data["status"] = "in_progress"
    try:
        Batch.model_validate(data)
    except pydantic.ValidationError as exc:
        where = ".".join(str(step) for step in exc.errors()[0]["loc"]) or "the batch"
        raise MalformedReplyError(call, f"{where} is not what a batch holds") from None


def page_items(pages: object, call: str) -> Iterator[object]:
    """The raw items of a cursor listing, page by page, each page checked to be a list.

    A page ending with an item already seen would make the SDK ask for the same page forever.
    """
    seen: set[str] = set()
    for page in _object(pages, SyncCursorPage, call, "the reply").iter_pages():
        data = _object(page, SyncCursorPage, call, "a page").data
        _require(isinstance(data, list), call, "data", data, "a list")
        last = getattr(data[-1], "id", None) if data else None
        if is_id(last):
            if last in seen:
                raise MalformedReplyError(call, "the listing repeats a page")
            seen.add(last)
        yield from data
