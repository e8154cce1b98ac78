"""The chart of requests completed and their cost over time, as inline SVG (no script, no library).

Bars: requests that ended (succeeded or failed) in each time bucket, by the time their batch ended.
Line: the estimated cost so far, on its own scale. Both come from the batches in the state database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.cli.web_layout import esc, when

WIDTH, HEIGHT = 900, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 90, 22, 28
# The first that keeps the chart under MAX_BARS over the data's span (the first batch's end to now):
# a few seconds of work get second-wide bars, not a half-hour axis with all of it in the last bar.
BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)
MAX_BARS = 60
MIN_BARS = 12  # a tiny span still spreads over the chart's width rather than one wide bar


@dataclass(frozen=True)
class Ended:
    """Requests of one batch that ended at ``at`` and what they cost (None: unknown)."""

    at: float
    requests: int
    cost: float | None


def bucket_size(first: float, last: float) -> float:
    for size in BUCKETS:
        if (last - first) / size < MAX_BARS:
            return size
    return BUCKETS[-1]


def chart(points: Iterable[Ended], now: float) -> str:
    ended = sorted(points, key=lambda p: p.at)
    if not ended:
        return '<p class="mute">No batch has ended yet: the chart starts with the first one.</p>'
    size = bucket_size(ended[0].at, now)
    start = min(ended[0].at - ended[0].at % size, now - now % size - (MIN_BARS - 1) * size)
    count = int((now - start) // size) + 1
    bars = [0] * count
    for point in ended:
        bars[min(count - 1, int((point.at - start) // size))] += point.requests
    costs, total = [(start, 0.0)], 0.0
    for point in ended:  # a step at each batch's end: its cost is known then, not before
        costs.append((point.at, total))
        total += point.cost or 0.0
        costs.append((point.at, total))
    return _svg(bars, costs, start, size, now)


def _svg(bars: list[int], costs: list[tuple[float, float]], start: float, size: float, now: float) -> str:
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_requests = max(*bars, 1)
    top_cost = max((c for _, c in costs), default=0.0) or 1.0
    step = inner_w / len(bars)
    rects = "".join(
        f'<rect x="{LEFT + i * step + 1:.1f}" y="{TOP + inner_h * (1 - n / top_requests):.1f}" '
        f'width="{max(step - 2, 1):.1f}" height="{inner_h * n / top_requests:.1f}">'
        f"<title>{esc(when(start + i * size))}: {n} requests</title></rect>"
        for i, n in enumerate(bars)
        if n
    )
    span_s = max(now - start, 1.0)
    line = " ".join(
        f"{LEFT + inner_w * (at - start) / span_s:.1f},{TOP + inner_h * (1 - cost / top_cost):.1f}"
        for at, cost in costs
    )
    last_cost = costs[-1][1]
    line += f" {LEFT + inner_w:.1f},{TOP + inner_h * (1 - last_cost / top_cost):.1f}"
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="requests completed per {esc(_bucket_name(size))} and cost so far">'
        f'<line class="axis" x1="{LEFT}" y1="{TOP + inner_h}" x2="{LEFT + inner_w}" y2="{TOP + inner_h}"/>'
        f'<g class="bars">{rects}</g><polyline class="cost" points="{line}"/>'
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{top_requests:,}</text>'
        f'<text x="{LEFT - 6}" y="{TOP + inner_h}" text-anchor="end">0</text>'
        f'<text x="{LEFT + inner_w + 6}" y="{TOP + 10}">{money(top_cost)}</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{esc(when(start))}</text>'
        f'<text x="{LEFT + inner_w}" y="{HEIGHT - 8}" text-anchor="end">{esc(when(now))}</text>'
        f'<text x="{WIDTH / 2:.0f}" y="12" text-anchor="middle">bars: requests completed per '
        f"{esc(_bucket_name(size))}; line: estimated cost so far ({money(last_cost)})</text></svg>"
    )


def money(usd: float | None) -> str:
    """Estimated USD, with enough digits for the fractions of a cent small batches cost."""
    if usd is None:
        return "-"  # a model without a known price
    return f"${usd:.6f}" if usd < 0.01 else f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}"


def _bucket_name(size: float) -> str:
    names = {1.0: "second", 5.0: "5 seconds", 15.0: "15 seconds", 60.0: "minute", 300.0: "5 minutes"}
    names |= {900.0: "15 minutes", 3600.0: "hour", 21600.0: "6 hours"}
    return names.get(size, "day")
