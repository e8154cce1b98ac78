"""`batchd validate`: the intake's checks run over files, and what each file would make and cost."""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daemon.cli.validation_profile import chosen_profile, profile_limits
from daemon.config import Settings
from daemon.display import printable
from daemon.intake.drop_names import jsonl_name
from daemon.intake.estimates import Estimate, estimate_file
from daemon.intake.line_formats import format_limits, sniffed_format
from daemon.intake.reports import validation_lines
from daemon.intake.validation import BatchLimits
from daemon.providers import DEFAULT_PROFILE


def check_files(
    settings: Settings, paths: Iterable[Path], as_json: bool, profile: str | None = None, shape: str = "auto"
) -> bool:
    """Check each file and print the outcome (one JSON list with ``as_json``); True if all passed.
    ``profile``: the profile to check for (else each file's folder's); ``shape``: the line format
    (``auto``: the profile's, or for a default-profile file the shape of its first line)."""
    documents = [_checked(settings, path, as_json, chosen_profile(settings, path, profile), shape) for path in paths]
    if as_json:
        print(json.dumps(documents, indent=2, ensure_ascii=False))
    return all(document["ok"] for document in documents)


def _limits(settings: Settings, path: Path, profile: str, shape: str) -> BatchLimits:
    limits = profile_limits(settings, profile)
    if shape == "auto":
        # A file outside any profile's folder is checked in the shape its lines have.
        shape = sniffed_format(path) if profile == DEFAULT_PROFILE else limits.line_format
    if shape == limits.line_format:
        return limits
    # Another shape's own limits, but the setting the user gave: split_by_model holds for every shape.
    return dataclasses.replace(format_limits(shape), split_models=limits.split_models)


def _checked(settings: Settings, path: Path, as_json: bool, profile: str, shape: str) -> dict[str, Any]:
    try:
        estimate = estimate_file(path, _limits(settings, path, profile, shape), settings.prices)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a .jsonl.gz that is not gzip
        problem = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        if not as_json:
            print(printable(f"{path}: {problem}"))
        return {"file": str(path), "ok": False, "error": problem}
    problems = validation_lines(estimate.findings, str(path))
    if not as_json:
        _show(path, estimate, problems, profile)
    return {"file": str(path), "profile": profile, **estimate.as_json(), "problems": problems}


def _show(path: Path, estimate: Estimate, problems: list[str], profile: str) -> None:
    f = estimate.findings
    if f.ok:
        print(printable(f"{path}: ok ({f.requests} requests, {f.endpoint}, {_models(estimate)}{_note(profile)})"))
        for line in estimate.text().splitlines():  # one per model of a file split by model
            print(printable(f"  {line}"))
    else:
        print(printable(f"{path}: {f.problem_count} problem(s){_note(profile, ' for')}"))
        for line in problems:
            print(f"  {printable(line)}")
    if not f.ok and any(jsonl_name(path.name) in line for line in problems):
        return  # the fix shown already writes a name the drop zone takes
    if jsonl_name(path.name) != path.name:  # it would pass, and then sit in pending_upload/, ignored
        print(
            printable(f"  note: pending_upload/ takes *.jsonl and *.jsonl.gz only: drop it as {jsonl_name(path.name)}")
        )


def _models(estimate: Estimate) -> str:
    """ "model M", or "models A + B" for a file split by model (split_by_model)."""
    names = estimate.model_names
    return f"models {' + '.join(names)}" if len(names) > 1 else f"model {estimate.findings.model}"


def _note(profile: str, lead: str = ",") -> str:
    return "" if profile == DEFAULT_PROFILE else f"{lead} profile {profile}"
