"""Batch limits cut to one provider profile: its service may take fewer requests or bytes per
batch than OpenAI (a compatible service's 100 MB), and a batch over them would only be refused."""

from __future__ import annotations

import dataclasses

from daemon.intake.line_formats import line_format_of
from daemon.intake.validation import BatchLimits
from daemon.providers import Profile


def within_profile(limits: BatchLimits, profile: Profile) -> BatchLimits:
    """``limits`` with requests and bytes per batch no more than ``profile`` allows."""
    return dataclasses.replace(
        limits,
        max_requests=min(limits.max_requests, profile.max_requests_per_batch),
        max_bytes=min(limits.max_bytes, profile.max_bytes_per_batch),
        line_format=line_format_of(profile),
    )
