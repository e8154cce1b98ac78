"""A `Transfer-Encoding: chunked` request body, read like a sized one (see messages.BodyReader).

Anthropic's create call carries the whole batch in its body; a client that streams it from disk
without knowing the size up front sends it chunked, so the anthropic flavour accepts that.
"""

from __future__ import annotations

from daemon.emulator.errors import bad_request
from daemon.emulator.messages import BodyReader, Readable

MAX_SIZE_LINE = 1024


class ChunkedBodyReader(BodyReader):
    def __init__(self, stream: Readable) -> None:
        super().__init__(stream, 0)
        self._stream = stream
        self._left_in_chunk = 0
        self._done = False

    @property
    def remaining(self) -> int:
        """Unknown until read; 0 keeps size-based fault rules from matching on a guess."""
        return 0

    def read(self, size: int) -> bytes:
        if self._done:
            return b""
        if self._left_in_chunk == 0:
            self._left_in_chunk = self._next_chunk_size()
            if self._left_in_chunk == 0:
                self._finish()
                return b""
        data = self._stream.read(min(size, self._left_in_chunk))
        if not data:
            self._done = True  # the client went away mid-body
            return b""
        self._left_in_chunk -= len(data)
        if self._left_in_chunk == 0:
            self._line()  # the CRLF after the chunk's data
        return data

    def _next_chunk_size(self) -> int:
        line = self._line().split(b";", 1)[0].strip()
        try:
            return int(line, 16)
        except ValueError as error:
            self._done = True
            raise bad_request("Malformed chunked request body.") from error

    def _finish(self) -> None:
        """Skip the trailer section up to its blank line."""
        while self._line().strip():
            pass
        self._done = True

    def _line(self) -> bytes:
        chars = bytearray()
        while not chars.endswith(b"\n") and len(chars) < MAX_SIZE_LINE:
            char = self._stream.read(1)
            if not char:
                break
            chars += char
        return bytes(chars)
