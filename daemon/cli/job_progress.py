"""What a job's progress and tokens are, one definition for `batchd status` and the web page.

"Done" counts the requests that ran (succeeded or failed) of all the input's requests; those that
never ran (a batch expired or was cancelled before them, and they were not sent again) are shown
apart as "not run", never counted done: "8/9" in the table is "8 of 9 done ... 1 not run" on the page.

Tokens: unknown ("?") when no line or batch carried usage, so a running job's and the totals' figures
are never a made-up 0; a known 0 (every request failed) shows as 0; "+" marks a lower bound (some
succeeded lines carried no usage); "-" when there is nothing to count here (a pack's, handed to its
members).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNKNOWN = "?"
NOT_COUNTED = "-"


@dataclass(frozen=True)
class Split:
    """A job's requests: those that ran, by outcome, those that did not, and all of them."""

    succeeded: int
    failed: int
    not_run: int
    total: int

    @property
    def done(self) -> int:
        """The requests that ran; the not-run ones are shown apart."""
        return self.succeeded + self.failed


def ended_split(outcomes: Mapping[str, int], total: int) -> Split:
    """An ended job's split from its summary's outcomes (its total at least what they count)."""
    found = Split(outcomes["succeeded"], outcomes["failed"], outcomes["not_run"], total)
    return Split(found.succeeded, found.failed, found.not_run, max(total, found.done + found.not_run))


def shared_split(counts: Sequence[Mapping[str, Any]], total: int) -> Split:
    """An input riding in a shared batch: its share of that batch's progress (``counts``: the
    request_counts of the pack's batches), as its own requests are not counted apart there."""
    carried = sum(int(c.get("total") or 0) for c in counts) or 1
    succeeded = min(sum(int(c.get("completed") or 0) for c in counts) * total // carried, total)
    failed = sum(int(c.get("failed") or 0) for c in counts) * total // carried
    return Split(succeeded, min(failed, total - succeeded), 0, total)


def requests_done(outcomes: Mapping[str, int] | None, counted: int) -> int:
    """An ended job's done requests are its outcomes' (those that ran); a running job's, ``counted``
    from its batches."""
    return counted if outcomes is None else ended_split(outcomes, 0).done


def progress_text(split: Split) -> str:
    """ "8 of 9 done (5 succeeded, 3 failed), 1 not run": the page's words for the table's 8/9."""
    text = f"{split.done:,} of {split.total:,} done ({split.succeeded:,} succeeded, {split.failed:,} failed)"
    return text + f", {split.not_run:,} not run"


def token_count(usage: Mapping[str, Any] | None) -> int | None:
    """The job's total tokens, None when unknown."""
    return None if usage is None else int(usage.get("total_tokens") or 0)


def tokens_text(usage: Mapping[str, Any] | None, *, short: bool = False) -> str:
    """The job's tokens as one word (see the module's docstring); ``short``: 12.3k, 4.5M."""
    if usage is None:
        return UNKNOWN
    if not usage:
        return NOT_COUNTED
    total = token_count(usage) or 0
    more = "+" if usage.get("lines_with_usage", 0) < usage.get("lines_succeeded", 0) else ""
    if not short or total < 10_000:
        return f"{total:,}{more}" if not short else f"{total}{more}"
    return (f"{total / 1000:.1f}k" if total < 10_000_000 else f"{total / 1_000_000:.1f}M") + more


def total_tokens_text(known: int, unknown_jobs: int, jobs: int) -> str:
    """The totals' tokens: unknown when no job's are known, a lower bound when some are not."""
    if jobs and unknown_jobs >= jobs:
        return "tokens unknown"
    if unknown_jobs:
        return f"{known:,}+ tokens ({unknown_jobs} job(s) not known yet)"
    return f"{known:,} tokens"
