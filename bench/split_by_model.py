"""The split and the merge of an input split by model (split_by_model), at scale, against one model.

Two inputs of the same size: requests naming several models in turn (a, b, c, a, b, c, ...), and
the same requests naming one model. Each is split as the daemon splits it (intake/splitter.py, lanes
and routes file for the mixed one), then each part gets an output file written the way the service
writes them (its lines as the emulator answers them, in another order than sent), then results.jsonl
is merged: interleaved by the routes file (results/interleaver.py) or plainly (results/merger.py).
Each merge runs twice: once timed, its RSS growth read from the kernel (VmHWM, reset just before),
once under tracemalloc for its peak Python allocations. Scratch disk: every file of the run.
Run: .venv/bin/python -m bench.split_by_model [--requests 500000 --models 3]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.common import scratch, verdict
from daemon.emulator.answers import answer
from daemon.intake.splitter import Split, split_lines
from daemon.intake.validation import BatchLimits, iter_normalised
from daemon.results.interleaver import merge_lanes
from daemon.results.merger import Segment, merge
from tests.support import request_line

MEMORY_LIMIT_MB = 64.0  # one segment's index (50,000 entries) with room to spare, whatever the input's size
TIME_RATIO = 2.0  # the interleaved merge against the plain one
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
_MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    models: int
    parts: int
    split_seconds: float
    merge_seconds: float
    rss_growth_mb: float
    traced_peak_mb: float
    disk_mb: dict[str, float]  # what the run left on disk, by kind
    in_order: bool  # results.jsonl: one line per request, in input order, each with its own model


def write_input(path: Path, requests: int, models: tuple[str, ...]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(request_line(f"r{i}", model=models[i % len(models)]) + "\n" for i in range(requests))


def write_output(part: Path, dest: Path, seed: int) -> None:
    """The part's results as the service writes them: an answer per request, in another order."""
    with open(part, "rb") as fh:
        requests = [orjson.loads(raw) for raw in iter_normalised(fh)]
    random.Random(seed).shuffle(requests)
    with open(dest, "wb") as out:
        for n, request in enumerate(requests):
            body = request["body"]
            found = answer(
                request["url"], body, model=body["model"], seed=seed, custom_id=request["custom_id"], created=0
            )
            response = {"status_code": 200, "request_id": f"req_{seed}_{n}", "body": found.body}
            line = {
                "id": f"batch_req_{seed}_{n}",
                "custom_id": request["custom_id"],
                "response": response,
                "error": None,
            }
            out.write(orjson.dumps(line) + b"\n")


def segments_of(split: Split, outputs: Path) -> list[Segment]:
    segments = []
    for n, part in enumerate(split.parts):
        download = outputs / f"{n}_output.jsonl"
        write_output(part.path, download, seed=n)
        model = part.model if split.routes is not None else None  # as the collector gives them
        segments.append(
            Segment(part.path, [download], last_status="completed", ran_reported=part.request_count, model=model)
        )
    return segments


def merge_results(split: Split, segments: list[Segment], parts: Path, dest: Path) -> None:
    if split.routes is None:
        merge(segments, dest)
    else:
        merged = merge_lanes(segments, parts, dest, split.routes, False)
        assert merged.out_of_order is None, merged.out_of_order


def read_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def timed(action: Callable[[], None]) -> tuple[float, float]:
    """Seconds the action took and the RSS it added at its peak (MB): VmHWM is reset before it."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = read_status_kb("VmRSS")
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    return seconds, max(0, read_status_kb("VmHWM") - before) / 1024


def traced(action: Callable[[], None]) -> float:
    """The action's peak Python allocations (MB), above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        action()
        return (tracemalloc.get_traced_memory()[1] - base) / _MB
    finally:
        tracemalloc.stop()


def check_order(results: Path, requests: int, models: tuple[str, ...]) -> bool:
    """One line per request, in input order, each answered by its request's model."""
    count = 0
    with open(results, "rb") as fh:
        for count, raw in enumerate(fh, 1):
            line = orjson.loads(raw)
            n = count - 1
            if line["custom_id"] != f"r{n}" or line["response"]["body"]["model"] != models[n % len(models)]:
                return False
    return count == requests


def disk_of(root: Path) -> dict[str, float]:
    kinds = {"input": 0, "parts+routes": 0, "outputs": 0, "lane scratch": 0, "results": 0}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.name.endswith(".merged.jsonl"):
            kind = "lane scratch"
        elif path.parent.name == "outputs":
            kind = "outputs"
        elif path.parent.name == "parts":
            kind = "parts+routes"
        else:
            kind = "results" if path.name == "results.jsonl" else "input"
        kinds[kind] += path.stat().st_size
    return {kind: size / _MB for kind, size in kinds.items()}


def measure(label: str, requests: int, models: tuple[str, ...]) -> Run:
    root = scratch()
    try:
        source, parts, outputs, dest = root / "in.jsonl", root / "parts", root / "outputs", root / "results.jsonl"
        outputs.mkdir()
        write_input(source, requests, models)
        with open(source, "rb") as fh:
            start = time.perf_counter()
            split = split_lines(fh, parts, BatchLimits(split_models=True))
            split_seconds = time.perf_counter() - start
        assert split.findings.ok, split.findings
        segments = segments_of(split, outputs)
        seconds, growth = timed(lambda: merge_results(split, segments, parts, dest))
        in_order = check_order(dest, requests, models)
        peak = traced(lambda: merge_results(split, segments, parts, dest))
        return Run(label, len(models), len(split.parts), split_seconds, seconds, growth, peak, disk_of(root), in_order)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def show(run: Run, requests: int) -> None:
    disk = ", ".join(f"{kind} {mb:.0f} MB" for kind, mb in run.disk_mb.items())
    print(
        f"split_by_model, {run.label} ({requests} requests, {run.models} model(s), {run.parts} parts): "
        f"split {run.split_seconds:.1f} s; merge {run.merge_seconds:.1f} s, RSS growth {run.rss_growth_mb:.1f} MB, "
        f"peak Python allocations {run.traced_peak_mb:.1f} MB; scratch disk {sum(run.disk_mb.values()):.0f} MB "
        f"({disk}); results in input order: {run.in_order}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500_000, help="requests in each input")
    parser.add_argument("--models", type=int, default=3, choices=range(2, len(MODELS) + 1), help="models it names")
    args = parser.parse_args()
    mixed = measure("interleaved", args.requests, MODELS[: args.models])
    show(mixed, args.requests)
    plain = measure("plain (1 model)", args.requests, MODELS[:1])
    show(plain, args.requests)
    ratio = mixed.merge_seconds / plain.merge_seconds
    memory = max(mixed.traced_peak_mb, mixed.rss_growth_mb)
    print(f"split_by_model, interleaved / plain merge time: {ratio:.2f}x (figures are noisy on a shared machine)")
    print(verdict(mixed.in_order and plain.in_order, "results.jsonl: every request once, in input order, own model"))
    print(
        verdict(
            memory < MEMORY_LIMIT_MB,
            f"interleaved merge of {args.requests} requests: peak {memory:.1f} MB (Python allocations or RSS "
            f"growth) < {MEMORY_LIMIT_MB:.0f} MB",
        )
    )
    print(verdict(ratio <= TIME_RATIO, f"interleaved merge time {ratio:.2f}x the plain merge's <= {TIME_RATIO:.0f}x"))


if __name__ == "__main__":
    main()
