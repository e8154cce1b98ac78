"""Wrapping: bare request bodies (and a JSON array of requests or bodies) as Batch API lines.

People start from the lines they would send to the API one by one, ``{"model": ..., "messages":
[...]}``, as the blog's own example does, or from a JSON array a script dumped. The Batch API wants
each line as ``{"custom_id", "method", "url", "body"}``. Wrapping gives each body a custom_id made
of a prefix and its line number in the original file (its position, from 1, in an array), so
wrapping the same file again gives the same ids and a result can always be traced to its line.
The url comes from the caller, or from the body where its fields say which endpoint it is for
(body_rules.inferred_url); lines that are already Batch API requests are kept as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from daemon.errors import DaemonError
from daemon.intake.body_rules import inferred_url
from daemon.intake.line_reader import LineSource, is_blank, iter_lines
from daemon.state.fileops import atomic_writer

DEFAULT_PREFIX = "line-"
ENVELOPE = frozenset({"custom_id", "method", "url", "body"})


class WrapError(DaemonError):
    """The file cannot be wrapped as it is; the message names the line and what to do."""


@dataclass(slots=True)
class Wrapped:
    wrapped: int = 0  # bare bodies given an envelope
    kept: int = 0  # lines that already were Batch API requests
    url: str | None = None  # the url the wrapped bodies were given


def is_bare_body(item: object) -> bool:
    """A request body without the Batch API envelope (it names a model, has none of the envelope)."""
    return isinstance(item, dict) and "model" in item and not item.keys() & ENVELOPE


def opens_array(first: bytes) -> bool:
    return first.lstrip().startswith(b"[")


def items_of(fh: LineSource) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each line of a JSON Lines file, or (position, item) of a JSON array."""
    first = fh.read(1 << 12)
    fh.seek(0)
    if opens_array(first):
        yield from _array_items(fh)
        return
    for line_no, raw in iter_lines(fh):
        if is_blank(raw):
            continue
        try:
            yield line_no, orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise WrapError(f"line {line_no} is not valid JSON ({exc}); fix it, then wrap the file again") from None


def _array_items(fh: LineSource) -> Iterator[tuple[int, Any]]:
    try:
        value = orjson.loads(fh.read())
    except orjson.JSONDecodeError as exc:
        raise WrapError(f"the file starts as a JSON array but is not valid JSON ({exc})") from None
    if not isinstance(value, list):
        raise WrapError("the file is not a JSON array of requests or request bodies")
    yield from enumerate(value, start=1)


class Wrapper:
    """Wraps items one at a time; remembers the url, which must be one for the whole file."""

    def __init__(self, url: str | None, id_prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = id_prefix
        self.done = Wrapped(url=url)
        self._given = url is not None
        self._url_line = 0

    def wrap(self, n: int, item: Any) -> dict[str, Any]:
        if isinstance(item, dict) and item.keys() >= ENVELOPE:
            self.done.kept += 1
            return item
        if not is_bare_body(item):
            raise WrapError(f"line {n} is neither a request body (an object naming a model) nor a Batch API request")
        url = self._url_for(n, item)
        self.done.wrapped += 1
        return {"custom_id": f"{self.prefix}{n}", "method": "POST", "url": url, "body": item}

    def _url_for(self, n: int, body: dict[str, Any]) -> str:
        if self._given:
            return str(self.done.url)
        url = inferred_url(body)
        if url is None:
            raise WrapError(
                f"line {n}: its fields do not say which endpoint it is for; give --url, e.g. --url /v1/responses"
            )
        if self.done.url is None:
            self.done.url, self._url_line = url, n
        elif url != self.done.url:
            raise WrapError(
                f"line {n} looks like a {url} request but line {self._url_line} like {self.done.url}; "
                "one file goes to one endpoint: give --url, or split the file"
            )
        return url


def wrap_to(source: LineSource, out: IO[bytes], url: str | None, id_prefix: str = DEFAULT_PREFIX) -> Wrapped:
    """Write ``source``'s requests to ``out`` as Batch API lines, one per line."""
    wrapper = Wrapper(url, id_prefix)
    for n, item in items_of(source):
        out.write(orjson.dumps(wrapper.wrap(n, item)) + b"\n")
    return wrapper.done


def wrap_file(source: Path, dest: Path, url: str | None, id_prefix: str = DEFAULT_PREFIX) -> Wrapped:
    """Wrap ``source`` into ``dest`` (which may be ``source`` itself: it is replaced only when done)."""
    mode = 0o644 if not dest.exists() else os.stat(dest).st_mode & 0o777
    with open(source, "rb") as fh, atomic_writer(dest, mode=mode) as out:
        return wrap_to(fh, out, url, id_prefix)
