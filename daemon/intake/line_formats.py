"""Which request-line shape an input is checked against: OpenAI's Batch API lines, or Anthropic's
Message Batches lines, chosen by the provider profile the input was routed to (or, for
``batchd validate`` without a profile, by the shape of the file's first line)."""

from __future__ import annotations

from pathlib import Path

import orjson

from daemon.intake.anthropic_lines import ANTHROPIC_FORMAT, AnthropicLineChecker
from daemon.intake.line_reader import is_blank
from daemon.intake.validation import BatchLimits, Findings, LineChecker, iter_requests
from daemon.providers import KIND_DEFAULTS, Profile

OPENAI_FORMAT = "openai"
SNIFFED_BYTES = 1 << 20  # a first line longer than this is not looked into: checked as OpenAI's


def line_format_of(profile: Profile) -> str:
    """The line shape ``profile``'s service takes."""
    return ANTHROPIC_FORMAT if profile.kind == "anthropic" else OPENAI_FORMAT


def format_limits(line_format: str) -> BatchLimits:
    """The limits of a line shape's own service, for ``batchd validate`` without a profile."""
    if line_format != ANTHROPIC_FORMAT:
        return BatchLimits()
    anthropic = KIND_DEFAULTS["anthropic"]
    return BatchLimits(
        max_requests=anthropic.max_requests_per_batch,
        max_bytes=anthropic.max_bytes_per_batch,
        urls=anthropic.endpoints,
        line_format=ANTHROPIC_FORMAT,
    )


def line_checker(limits: BatchLimits) -> LineChecker:
    """A checker for the lines ``limits.line_format`` names."""
    return AnthropicLineChecker(limits) if limits.line_format == ANTHROPIC_FORMAT else LineChecker(limits)


def validate_input(path: Path, limits: BatchLimits) -> Findings:
    """Every check over ``path`` without writing anything (``batchd validate``), in its format."""
    checker = line_checker(limits)
    with open(path, "rb") as fh:
        for _ in iter_requests(fh, checker):
            pass
    return checker.finish()


def sniffed_format(path: Path) -> str:
    """``anthropic`` if the file's first non-blank line has ``params`` and no ``body``, else ``openai``."""
    with open(path, "rb") as fh:
        for raw in iter(lambda: fh.readline(SNIFFED_BYTES), b""):
            if is_blank(raw):
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return OPENAI_FORMAT
            anthropic = isinstance(line, dict) and "params" in line and "body" not in line
            return ANTHROPIC_FORMAT if anthropic else OPENAI_FORMAT
    return OPENAI_FORMAT
