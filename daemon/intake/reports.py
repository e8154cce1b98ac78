"""Human-readable reports beside inputs that go to failed/."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from daemon.intake.drop_names import jsonl_name
from daemon.intake.problem_groups import Group
from daemon.intake.validation import BARE_BODY_HINT, JSON_ARRAY_PROBLEM, Findings
from daemon.results_sharing import ResultsSharing
from daemon.state.fileops import write_atomic


def report_path(failed_input: Path) -> Path:
    return failed_input.with_name(failed_input.name + ".report.txt")


FIX_ADVICE = "Fix the input and drop it into the drop zone again; batchd treats it as a new job."
# The advice a report ends with when {name} is the input's name in failed/: the command to run.
RETRY_ADVICE = "Fix the input where it is in failed/, then run `batchd retry {name}`; batchd treats it as a new job."
# The advice when the service refused some parts of an input but others ran (and are paid for).
PART_REFUSED_ADVICE = (
    "The other parts' requests ran and are paid for. Once the cause is fixed (in the input, the config or on the "
    "service), `batchd retry {job_id} --failed` sends only the requests that failed or did not run, their "
    "original lines, as a new input; `batchd retry {name}` would send the whole input again, paid again."
)


def write_report(
    failed_input: Path,
    source_name: str,
    job_id: str,
    reason: str,
    lines: Iterable[str],
    advice: str = FIX_ADVICE,
    sharing: ResultsSharing | None = None,
    root: Path | None = None,
) -> Path:
    """The report beside an input in failed/; with ``sharing`` (results_group / results_mode), the input
    and its report get that group and mode, so whoever dropped the file can read why it failed. With
    ``root``, the report says where its commands run (they name failed/ and inputs relative to it)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    text = [
        f"batchd could not process {source_name!r} (job {job_id}, {when}).",
        f"Reason: {reason}",
        "",
        *lines,
        "",
        *([where_commands_run(root)] if root is not None else []),
        RETRY_ADVICE.format(name=failed_input.name) if advice == FIX_ADVICE else advice,
    ]
    dest = report_path(failed_input)
    write_atomic(dest, ("\n".join(text) + "\n").encode("utf-8"), mode=0o644)
    if sharing is not None:
        for path in (failed_input, dest):
            if path.exists():
                sharing.share(path)
    return dest


def where_commands_run(root: Path) -> str:
    """A report is read anywhere, but its commands name paths inside the daemon's root."""
    return (
        f"Commands here run inside the daemon's root, {root} (`cd` there first; `batchd retry` also takes "
        f"`--root {root}`), as the daemon's user."
    )


def validation_lines(findings: Findings, file: str = "FILE") -> list[str]:
    """The problems, each problem found on several lines once with its count; ``file`` is how the
    commands suggested name the input."""
    groups = findings.groups
    repeated = dict(groups.repeated())
    lines = [_group_line(message, group, groups.lines) for message, group in repeated.items()]
    listed = sum(group.count for group in repeated.values())
    for n, msg in findings.problems:
        if msg not in repeated:
            lines.append(f"line {n}: {msg}" if n else msg)
            listed += 1
    rest = findings.problem_count - listed
    if rest > 0:
        lines.append(f"... and {rest} more problems not listed")
    return [*lines, *_fixes(findings, file)]


def wrapped_at_intake(findings: Findings) -> bool:
    """Whether every problem is one that wrap_bare_bodies fixes at intake (bare bodies, one JSON array)."""
    fixed = (findings.groups.groups.get(name) for name in (BARE_BODY_HINT, JSON_ARRAY_PROBLEM))
    return findings.problem_count > 0 and sum(g.count for g in fixed if g is not None) == findings.problem_count


def _group_line(message: str, group: Group, all_lines: int) -> str:
    if group.count == all_lines:
        return f"all {group.count:,} lines: {message}"
    shown = ", ".join(str(n) for n in group.lines)
    more = f" and {group.count - len(group.lines):,} more" if group.count > len(group.lines) else ""
    return f"{group.count:,} lines ({shown}{more}): {message}"


def _fixes(findings: Findings, file: str) -> list[str]:
    """The command that fixes a whole file of bare bodies or one JSON array."""
    groups = findings.groups
    bare = groups.groups.get(BARE_BODY_HINT)
    if bare is None and JSON_ARRAY_PROBLEM not in groups.groups:
        return []
    url = groups.bare_url
    given = f" --url {url}" if url else " --url /v1/..."
    out = str(Path(file).with_name(jsonl_name(Path(file).name)))  # a name the drop zone takes
    command = f"batchd wrap {file}{given} -o {out}"
    if JSON_ARRAY_PROBLEM in groups.groups:
        return [
            f"Fix: run `batchd wrap {file} -o {out}` (bare bodies get the url their fields name; add --url URL "
            "if they do not name one), or set wrap_bare_bodies = true in the config to have batchd do it at intake."
        ]
    assert bare is not None
    what = "all of them are" if bare.count == groups.lines else f"{bare.count:,} lines are"
    return [
        f"Fix: {what} bare request bodies; run `{command}` to wrap them (custom_ids from line numbers), "
        "or set wrap_bare_bodies = true in the config to have batchd wrap them at intake."
    ]
