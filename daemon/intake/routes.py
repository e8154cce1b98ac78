"""The routes file of an input split by model: which model's parts each request went to, in input order.

With ``split_by_model`` each model's requests go to parts of their own ("lanes", numbered by the
order in which the input first names each model), so the parts no longer hold runs of the input.
The splitter writes one byte per request, in input order: the request's lane. The merge reads it
back to put the results in input order again: for each request, the next result of its lane. A
file of one byte per request stays small (50 MB for 50 million requests) and is read in chunks.
An input of one model has no routes file: its parts are runs of the input, as they always were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

ROUTES_NAME = "routes"  # in the job's parts folder, beside its part files
_CHUNK = 1 << 16


def routes_path(parts_folder: Path) -> Path:
    return parts_folder / ROUTES_NAME


def iter_routes(path: Path) -> Iterator[int]:
    """Each request's lane, in input order."""
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield from chunk
