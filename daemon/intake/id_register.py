"""A compact record of the custom_ids of one input, for the rule that each is used once.

A dict of 500,000 ids to their line numbers takes about 60 MB, and grows with the file. Here each
id is kept only as a 64-bit hash with its line, in two flat arrays (an open-addressing table of 12
bytes a slot, at most half full: in a big input 24 to 48 bytes an id, whatever its length). Two
different ids may share a hash, so a hash seen before only makes the line a candidate; after the
pass the candidates are settled exactly by reading their ids (and those of the first lines with
their hashes) again from the file, so a shared hash never turns a valid file away and every real
repeat is reported with the first line that used the id. A file without repeats (the usual case)
is read once.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

import orjson

from daemon.intake.line_reader import CHUNK, LineSource

_START = 1 << 10  # slots; a power of two
# Each growth moves every id in Python, which costs about as much as adding it: up to this size the
# table grows 4-fold (fewer moves), beyond it 2-fold (less room left unused).
_QUICK_GROWTH_BELOW = 1 << 20


class IdRegister:
    """The hashes of the ids seen so far, with the first line of each, and the lines to settle."""

    def __init__(self, hasher: Callable[[str], int] = hash) -> None:
        # A signed 64-bit hash, as hash() gives; replaceable so tests can make different ids share one.
        self._hasher = hasher
        self._keys = array("q", [0]) * _START  # 0: an empty slot
        self._lines = array("I", [0]) * _START
        self._mask = _START - 1
        self._room = _START // 2  # ids until the table grows: at most half full, so a probe mostly ends at once
        self.candidates = array("Q")  # lines whose id's hash was seen before, in order
        self.earlier = array("Q")  # per candidate, the first line with that hash
        self._counted = bytearray()  # per candidate, 1 if its line was counted as a request

    def add(self, custom_id: str, line_no: int) -> bool:
        """Record ``custom_id`` on ``line_no``; False if its hash was seen before (a candidate)."""
        key = self._hasher(custom_id) or 1
        keys, mask = self._keys, self._mask
        slot = key & mask
        while found := keys[slot]:
            if found == key:
                return self._add_candidate(line_no, slot)
            slot = (slot + 1) & mask
        keys[slot] = key
        try:
            self._lines[slot] = line_no
        except OverflowError:  # past line 4,294,967,295: lines take 8 bytes from now on
            self._lines = array("Q", self._lines)
            self._lines[slot] = line_no
        self._room -= 1
        if not self._room:
            self._grow()
        return True

    def _add_candidate(self, line_no: int, slot: int) -> bool:
        self.candidates.append(line_no)
        self.earlier.append(self._lines[slot])
        self._counted.append(0)
        return False

    def count_candidate(self, line_no: int) -> None:
        """Note that the last candidate, on ``line_no``, passed every other check (it was counted)."""
        if self.candidates[-1] == line_no:
            self._counted[-1] = 1

    def was_counted(self, line_no: int) -> bool:
        return bool(self._counted[bisect_left(self.candidates, line_no)])

    def settle(self, source: LineSource, start: int) -> Iterator[tuple[int, str, int]]:
        """(line, custom_id, first line using it) for each candidate that really repeats an id,
        in line order. Reads the file again from ``start``; leaves it where it was."""
        if not self.candidates:
            return
        end = source.tell()
        wanted = sorted({*self.candidates, *self.earlier})
        first_use: dict[str, int] = {}
        try:
            # Every line with a candidate's hash is wanted (the first with it, and the candidates),
            # so in line order the first line seen with an id is the first that used it.
            for line_no, raw in lines_at(source, start, wanted):
                custom_id = _custom_id(raw)
                if custom_id is None:
                    continue  # not the line checked in the pass: the file changed (its fingerprint tells)
                first = first_use.setdefault(custom_id, line_no)
                if first != line_no:
                    yield line_no, custom_id, first
        finally:
            source.seek(end)

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = len(old_keys) * (4 if len(old_keys) < _QUICK_GROWTH_BELOW else 2)
        keys = array("q", [0]) * size  # no temporary bytes beside it
        lines = array(old_lines.typecode, [0]) * size
        mask = size - 1
        for key, line_no in zip(old_keys, old_lines, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot], lines[slot] = key, line_no
        self._keys, self._lines = keys, lines
        self._mask, self._room = mask, size // 2 - len(old_keys) // 2


def _custom_id(raw: bytes) -> str | None:
    try:
        value = orjson.loads(raw).get("custom_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def lines_at(source: LineSource, start: int, wanted: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """The lines numbered ``wanted`` (ascending, counted from 1 at ``start``), read in chunks;
    numbered as line_reader numbers them. Only a wanted line is held, one at a time."""
    source.seek(start)
    targets = iter(wanted)
    target = next(targets, None)
    line_no, held = 1, bytearray()
    while target is not None and (chunk := source.read(CHUNK)):
        pos = 0
        while target is not None:
            newline = chunk.find(b"\n", pos)
            end = len(chunk) if newline < 0 else newline + 1
            if line_no == target:
                held += chunk[pos:end]
            if newline < 0:
                break
            if line_no == target:
                yield line_no, bytes(held)
                held.clear()
                target = next(targets, None)
            line_no, pos = line_no + 1, end
    if target is not None and held:
        yield target, bytes(held)  # the last line, without its newline
