"""The results of an input split by model, put back in input order by its routes file.

Each model's requests went to parts of their own (intake/splitter.py lanes), so a segment is no
run of the input. Each segment is merged apart into a scratch file (one line per request of its
part file, in its order: merger.merge_apart), then results.jsonl is written by reading the routes
file: for each request in input order, the next line of its lane's current segment (a lane's
segments in segment order). Memory stays bounded: one segment's index while merging, then one open
scratch file per lane. Without a usable routes file (lost, or not adding up) the segments follow
one another in segment order, and the merge says so. Each model's scratch files stay for the
summary (its usage and cost per model) until the job's parts folder is removed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from daemon.intake.line_reader import copy_line
from daemon.intake.routes import iter_routes
from daemon.results.merger import Segment, merge_apart
from daemon.state.fileops import atomic_writer


class RoutesMismatchError(Exception):
    """The routes file names more (or fewer) requests of a lane than its segments hold."""


@dataclass(slots=True)
class LaneResults:
    """One model's merged results: its segments' scratch files, in segment order."""

    files: list[Path] = field(default_factory=list)
    requests: int = 0


@dataclass(slots=True)
class LaneMerge:
    counts: Counter[str]
    lanes: dict[str, LaneResults]  # model -> its results, lanes in order of first use
    # Why the results follow one another segment by segment, not in input order; None: in input order.
    out_of_order: str | None = None


def merge_lanes(
    segments: list[Segment], scratch: Path, dest: Path, routes: Path | None, normalise_bodies: bool
) -> LaneMerge:
    """Write ``dest`` from ``segments`` (in segment order) in input order by ``routes``, or in
    segment order when ``routes`` is None (the input's order is unknown) or does not add up."""
    merged = LaneMerge(Counter(), {})
    files: list[Path] = []
    scratch.mkdir(mode=0o700, parents=True, exist_ok=True)
    for n, segment in enumerate(segments):
        files.append(scratch / f"{n}.merged.jsonl")
        found = merge_apart(segment, files[-1], normalise_bodies)
        merged.counts += found
        lane = merged.lanes.setdefault(segment.model or "", LaneResults())
        lane.files.append(files[-1])
        lane.requests += sum(found.values())
    if routes is None:
        merged.out_of_order = "the input's order is unknown"
    elif not routes.exists():
        merged.out_of_order = f"its routes file ({routes.name}, the input order of the models' requests) is gone"
    else:
        try:
            _interleave([lane.files for lane in merged.lanes.values()], routes, dest)
        except RoutesMismatchError as exc:
            merged.out_of_order = f"its routes file does not add up: {exc}"
    if merged.out_of_order is not None:
        _concatenate(files, dest)
    return merged


def _interleave(lanes: list[list[Path]], routes: Path, dest: Path) -> None:
    readers = [LaneReader(files) for files in lanes]
    try:
        with atomic_writer(dest) as out:
            for lane in iter_routes(routes):
                if lane >= len(readers):
                    raise RoutesMismatchError(f"the routes file names lane {lane} of {len(readers)}")
                readers[lane].copy_line(out)
            if any(reader.has_more() for reader in readers):
                raise RoutesMismatchError("the segments hold more results than the routes file names")
    finally:
        for reader in readers:
            reader.close()


def _concatenate(files: list[Path], dest: Path) -> None:
    with atomic_writer(dest) as out:
        for path in files:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    out.write(chunk)


class LaneReader:
    """One lane's merged lines, its segments' scratch files read one after the other."""

    def __init__(self, files: list[Path]) -> None:
        self._files = list(files)
        self._fh: IO[bytes] | None = None

    def copy_line(self, out: IO[bytes]) -> None:
        """Copy the lane's next line to ``out`` (in chunks: a result may be huge)."""
        while True:
            fh = self._current()
            if fh is None:
                raise RoutesMismatchError("the routes file names more results than a lane's segments hold")
            if copy_line(fh, fh.tell(), out):
                return
            self._next_file()

    def has_more(self) -> bool:
        while (fh := self._current()) is not None:
            if fh.read(1):  # only asked once every route was followed: nothing more is copied
                return True
            self._next_file()
        return False

    def _current(self) -> IO[bytes] | None:
        if self._fh is None and self._files:
            self._fh = open(self._files.pop(0), "rb")  # noqa: SIM115 - closed by _next_file or close
        return self._fh

    def _next_file(self) -> None:
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
