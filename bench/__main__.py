"""Every benchmark, each in its own process, then one table of every PASS and MISS line.

    python -m bench                  all of them at their target sizes (make bench)
    python -m bench --quick          all of them at small sizes, for a quick look (make bench-quick)
    python -m bench memory scale     only these (any bench.NAME module, listed below or not)
    python -m bench --set seed_compare "--seed-script POST"   extra arguments for one script

Exits 1 when any figure misses its target or a script fails (a failure counts as a MISS).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

VERDICTS = ("PASS: ", "MISS: ")  # what bench.common.verdict prints


@dataclass(frozen=True)
class Script:
    name: str  # run as python -m bench.NAME
    quick: str = ""  # arguments for --quick: smaller sizes, same targets


# One line per script, in the order they run: add yours here.
SCRIPTS = (
    Script("validation_speed", quick="--mb 20"),
    Script("intake_latency", quick="--files 200"),
    Script("fair_lanes", quick="--big-mb 200 --big-requests 50000 --upload-delay 2"),
    Script("memory", quick="--small-mb 5 --small-requests 1250 --big-mb 50 --big-requests 12500"),
    Script("long_lines", quick="--line-mib 50 --files 2"),
    Script("poll_calls", quick="--active 200 --changed 10 --foreign 400"),
    Script("scale", quick="--batches 1000"),
    Script("listeners", quick="--connections 500"),
    Script("creation_budget", quick="--scale 120"),
    Script("idle", quick="--seconds 15 --batches 2000"),
    Script("anthropic_create", quick="--mb 20 --requests 10000"),
    Script("split_by_model", quick="--requests 50000"),
    Script("seed_compare"),  # fewer files would measure the emulator's fixed batch lifecycle, not the tools
)


@dataclass(frozen=True)
class Outcome:
    script: str
    verdicts: list[str]
    status: int
    seconds: float

    @property
    def rows(self) -> list[tuple[str, str]]:
        """(PASS/MISS, target) per figure; a script that failed or printed no verdict is one MISS."""
        rows = [(line[:4], line[len("PASS: ") :]) for line in self.verdicts]
        if self.status != 0:
            rows.append(("MISS", f"the script exited with status {self.status}"))
        elif not rows:
            rows.append(("MISS", "the script printed no verdict line"))
        return rows


def run(script: str, args: list[str]) -> Outcome:
    """Run one script, its output passed through as it comes; keep its verdict lines."""
    command = [sys.executable, "-m", f"bench.{script}", *args]
    print(f"\n=== {shlex.join(command[1:])}", flush=True)
    started = time.monotonic()
    verdicts = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.lstrip().startswith(VERDICTS):
                verdicts.append(line.strip())
    return Outcome(script, verdicts, proc.returncode, time.monotonic() - started)


def summarize(outcomes: list[Outcome], seconds: float) -> int:
    """Print the table; return how many figures missed."""
    width = max(len(o.script) for o in outcomes)
    print(f"\n=== Summary ({seconds:.0f} s)\n{'script':<{width}}  verdict  target")
    misses = 0
    for outcome in outcomes:
        for mark, target in outcome.rows:
            misses += mark == "MISS"
            print(f"{outcome.script:<{width}}  {mark:<7}  {target}")
    total = sum(len(o.rows) for o in outcomes)
    print("time per script: " + ", ".join(f"{o.script} {o.seconds:.0f} s" for o in outcomes))
    print(f"{misses} MISS of {total} figures")
    return misses


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="scripts to run (default: every one listed in bench/__main__.py)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a quick look, not the targets' sizes")
    parser.add_argument(
        "--set", nargs=2, action="append", default=[], metavar=("NAME", "ARGS"), help="more arguments for one script"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    listed = {s.name: s for s in SCRIPTS}
    names = args.names or list(listed)
    extra: dict[str, list[str]] = {}
    for name, more in args.set:
        extra.setdefault(name, []).extend(shlex.split(more))
    started = time.monotonic()
    outcomes = []
    for name in names:
        quick = shlex.split(listed[name].quick) if args.quick and name in listed else []
        outcomes.append(run(name, quick + extra.get(name, [])))
    return 1 if summarize(outcomes, time.monotonic() - started) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
