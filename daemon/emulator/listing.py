"""Cursor pagination shared by `GET /files` and `GET /batches`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Item = TypeVar("Item")


def cursor_page(
    rows: list[tuple[int, Item]],
    after_seq: int | None,
    limit: int,
    descending: bool,
    to_json: Callable[[Item], dict[str, Any]],
) -> dict[str, Any]:
    """Page over (sequence, item) rows that are already in listing order.

    `after_seq` is the cursor object's creation sequence, so the next page starts right after it
    even when the cursor object itself has been deleted meanwhile. Only the returned page is
    serialised, which keeps listing cheap when thousands of batches exist.
    """
    if after_seq is not None:
        rows = [row for row in rows if (row[0] < after_seq if descending else row[0] > after_seq)]
    data = [to_json(item) for _, item in rows[:limit]]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
    }
