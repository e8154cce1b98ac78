"""Identical problems of a file counted together, so a report says "all 250 lines are bare
request bodies" once instead of the same sentence 250 times.

Only the wording is compared: a problem that names its own line's details (a repeated custom_id)
stays a group of one. The number of distinct problems kept is bounded: a file with a million
different problems costs no more than MAX_GROUPS of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.intake.body_rules import inferred_url

MAX_GROUPS = 1000
LINES_SHOWN = 5


@dataclass(slots=True)
class Group:
    count: int = 0
    lines: list[int] = field(default_factory=list)  # the first LINES_SHOWN line numbers


@dataclass(slots=True)
class ProblemGroups:
    groups: dict[str, Group] = field(default_factory=dict)
    lines: int = 0  # lines that were not blank
    whole_document: bool = False  # the file is one JSON array
    bare_urls: set[str | None] = field(default_factory=set)  # the url each bare body points to

    def add(self, line_no: int, message: str) -> None:
        group = self.groups.get(message)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                return
            group = self.groups[message] = Group()
        group.count += 1
        if len(group.lines) < LINES_SHOWN and line_no:
            group.lines.append(line_no)

    def note_bare(self, body: Mapping[str, Any]) -> None:
        if len(self.bare_urls) < 3:  # enough to know whether one url fits them all
            self.bare_urls.add(inferred_url(body))

    @property
    def bare_url(self) -> str | None:
        """The one url every bare body seen points to; None if they differ or none says."""
        return next(iter(self.bare_urls)) if len(self.bare_urls) == 1 else None

    def repeated(self) -> list[tuple[str, Group]]:
        """The problems found on more than one line, most frequent first."""
        found = [(message, group) for message, group in self.groups.items() if group.count > 1]
        return sorted(found, key=lambda item: -item[1].count)
