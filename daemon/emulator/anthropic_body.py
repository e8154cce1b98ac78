"""The create call's JSON body, read as it arrives: `{"requests": [...]}` one request at a time.

A create body may be 256 MB; parsed whole it would take gigabytes of Python objects. Here the
text is decoded in chunks and each element of `requests` is parsed on its own (the stdlib's C
scanner via `raw_decode`), so memory holds one request and one chunk, however big the batch.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from daemon.emulator.errors import bad_request

CHUNK = 1 << 20
WHITESPACE = " \t\n\r"
NUMBER_START = "-0123456789"
NUMBER_END = re.compile(r"[^0-9eE.+-]")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class BodyScanner:
    """Tokens of a JSON text read from `read(size)`, with the buffer kept to what is unparsed."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder(parse_constant=_reject_constant)
        self._text = ""
        self._pos = 0
        self._ended = False

    def _fill(self, size: int = 0) -> bool:
        """Append one more chunk (of `size` bytes, else CHUNK); False at the end of the body."""
        if self._ended:
            return False
        raw = self._read(size or CHUNK)
        try:
            text = self._decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as error:
            raise bad_request("The request body is not valid UTF-8.") from error
        self._ended = not raw
        self._text = self._text[self._pos :] + text
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            while self._pos < len(self._text) and self._text[self._pos] in WHITESPACE:
                self._pos += 1
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._fill():
                return ""

    def expect(self, allowed: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            raise bad_request("The request body is not valid JSON.")
        self._pos += 1
        return char

    def value(self) -> Any:
        """One JSON value; reads more while it is cut off at the end of the buffer."""
        if self.peek() in NUMBER_START:
            # A number cut at the buffer's edge would parse as a shorter one: read to its end first.
            while NUMBER_END.search(self._text, self._pos) is None and self._fill():
                pass
        size = CHUNK
        while True:
            try:
                value, end = self._json.raw_decode(self._text, self._pos)
            except ValueError as error:
                if self._fill(size):
                    size *= 2  # a big value: fewer re-parses from its start
                    continue
                raise bad_request("The request body is not valid JSON.") from error
            self._pos = end
            return value


def body_requests(read: Callable[[int], bytes]) -> Iterator[Any]:
    """The elements of the body's `requests` array, in order; other top-level fields are refused."""
    scanner = BodyScanner(read)
    scanner.expect("{")
    seen = False
    if scanner.peek() != "}":
        while True:
            key = scanner.value()
            if not isinstance(key, str):
                raise bad_request("The request body is not valid JSON.")
            scanner.expect(":")
            if key != "requests" or seen:
                raise bad_request(f"{key}: Extra inputs are not permitted")
            seen = True
            yield from _array(scanner)
            if scanner.expect(",}") == "}":
                break
    else:
        scanner.expect("}")
    if scanner.peek():
        raise bad_request("The request body is not valid JSON.")
    if not seen:
        raise bad_request("requests: Field required")


def _array(scanner: BodyScanner) -> Iterator[Any]:
    if scanner.peek() != "[":
        raise bad_request("requests: Input should be a valid list")
    scanner.expect("[")
    if scanner.peek() == "]":
        scanner.expect("]")
        return
    while True:
        yield scanner.value()
        if scanner.expect(",]") == "]":
            return
