"""Human-readable reports beside inputs that go to failed/."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from daemon.intake.validation import Findings
from daemon.state.fileops import write_atomic


def report_path(failed_input: Path) -> Path:
    return failed_input.with_name(failed_input.name + ".report.txt")


FIX_ADVICE = "Fix the input and drop it into the drop zone again; batchd treats it as a new job."


def write_report(
    failed_input: Path, source_name: str, job_id: str, reason: str, lines: Iterable[str], advice: str = FIX_ADVICE
) -> Path:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    text = [
        f"batchd could not process {source_name!r} (job {job_id}, {when}).",
        f"Reason: {reason}",
        "",
        *lines,
        "",
        advice,
    ]
    dest = report_path(failed_input)
    write_atomic(dest, ("\n".join(text) + "\n").encode("utf-8"), mode=0o644)
    return dest


def validation_lines(findings: Findings) -> list[str]:
    lines = [f"line {n}: {msg}" if n else msg for n, msg in findings.problems]
    rest = findings.problem_count - len(findings.problems)
    if rest > 0:
        lines.append(f"... and {rest} more problems not listed")
    return lines
