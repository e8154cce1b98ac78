"""A job's batches as `batchd status` and the web page count them: its own, and those of the pack
whose shared batch carried its requests with other inputs' (each batch once, the shared ones marked).

A small input packed with others has no batch of its own while its pack runs (its part rides in the
pack's part), and once the pack's results are handed over it holds the pack's batch as its own: in
both cases it went in one batch, shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.state.rows import Part


def shared_batches(pack_parts: list[Part]) -> list[dict[str, Any]]:
    """The batches of the pack an input rode in: its requests went in them, with other inputs'."""
    return [{"id": p.batch_id, "status": p.shown_status} for p in pack_parts if p.batch_id]


def counted_batches(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The row's batches (``batches`` and ``shared_batches``), each once, its own first; each says
    whether it is ``shared``."""
    shared = row.get("shared_batches") or []
    ids = {str(b["id"]) for b in shared}
    found: dict[str, dict[str, Any]] = {}
    for batch in [*row["batches"], *shared]:
        found.setdefault(str(batch["id"]), {**batch, "shared": str(batch["id"]) in ids})
    return list(found.values())


def batch_count_text(batches: list[dict[str, Any]]) -> str:
    """ "2", or "1 (shared)" when a batch carried other inputs' requests too."""
    return f"{len(batches)} (shared)" if any(b["shared"] for b in batches) else str(len(batches))
