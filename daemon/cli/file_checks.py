"""`batchd validate`: the intake's checks run over files, and what each file would make and cost."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.display import printable
from daemon.intake.estimates import Estimate, estimate_file
from daemon.intake.preparer import batch_limits
from daemon.intake.reports import validation_lines


def check_files(settings: Settings, paths: Iterable[Path], as_json: bool) -> bool:
    """Check each file and print the outcome (one JSON list with ``as_json``); True if all passed."""
    documents = [_checked(settings, path, as_json) for path in paths]
    if as_json:
        print(json.dumps(documents, indent=2, ensure_ascii=False))
    return all(document["ok"] for document in documents)


def _checked(settings: Settings, path: Path, as_json: bool) -> dict[str, Any]:
    try:
        estimate = estimate_file(path, batch_limits(settings), settings.prices)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a .jsonl.gz that is not gzip
        problem = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        if not as_json:
            print(printable(f"{path}: {problem}"))
        return {"file": str(path), "ok": False, "error": problem}
    problems = validation_lines(estimate.findings, str(path))
    if not as_json:
        _show(path, estimate, problems)
    return {"file": str(path), **estimate.as_json(), "problems": problems}


def _show(path: Path, estimate: Estimate, problems: list[str]) -> None:
    f = estimate.findings
    if f.ok:
        print(printable(f"{path}: ok ({f.requests} requests, {f.endpoint}, model {f.model})"))
        print(printable(f"  {estimate.text()}"))
        return
    print(printable(f"{path}: {f.problem_count} problem(s)"))
    for line in problems:
        print(f"  {printable(line)}")
