"""The web page's Commands table shows an outcome of several lines as lines: a retry's "moved ... to
...; batchd picks it up as a new job" and "the old report is kept as ..." ran together as one sentence."""

from __future__ import annotations

from daemon.cli.web_actions import commands_html
from daemon.state.command_queries import Command


def test_an_outcome_of_two_lines_is_shown_as_two_lines() -> None:
    result = "moved failed/a.jsonl to pending_upload/a.jsonl; batchd picks it up as a new job\nthe old report is kept"
    done = Command("c1", "retry", "a.jsonl", "alice", 1.0, state="done", result=result)
    html = commands_html([done])
    assert "as a new job<br>the old report is kept</td>" in html


def test_an_outcome_is_escaped_line_by_line() -> None:
    html = commands_html([Command("c2", "retry", "x", "bob", 1.0, state="refused", result="<b>x</b>\n&")])
    assert "&lt;b&gt;x&lt;/b&gt;<br>&amp;</td>" in html
