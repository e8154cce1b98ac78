"""The seed bash script and batchd on the same drop of files, against the same emulator on 127.0.0.1.

The script is taken from the blog post it was published in (the first ```bash block) and patched
in three places only: its API host (https://api.openai.com -> the emulator), its CHECK_INTERVAL and
its idle `sleep 60`. Everything else runs as written, with bash, curl and jq. Each tool gets its own
fresh folder; the time is from the drop (renames into pending_upload/) until every file has results.
Run: .venv/bin/python -m bench.seed_compare [--files 200 --seed-script PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import scratch, verdict, write_requests
from bench.daemon_process import DaemonProcess
from daemon.emulator import EmulatorServer, EmulatorSettings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO.parent / "shared" / "seeds" / "001_b45692728f79950c.txt"
TOOLS = ("bash", "curl", "jq")
SPEEDUP_TARGET = 5.0
PAUSE = 0.05
# The same short lifecycle for both: about 1.4 s from creation to completed.
EMULATOR = EmulatorSettings(validating_seconds=0.2, in_progress_seconds=1.0, finalizing_seconds=0.2)
CAVEATS = (
    "no request fails and no upload is refused in this drop, so the script's known defects (a failed upload "
    "recorded as name:null, failed/expired batches polled forever, error files never downloaded) are not "
    "exercised: both are timed on the happy path only",
    "the script only saves each raw output file (out of order); batchd also merges results.jsonl in input "
    "order and writes summary.json, so batchd does more work per file",
    "unpatched, the script checks every CHECK_INTERVAL=3600 s, so its real time to results is at least an "
    "hour; with the patched interval the comparison measures its serial curl/jq loop, not its schedule",
)


def extract_script(post: Path) -> str:
    """The first ```bash block of the post that is a whole script (starts with a shebang)."""
    text = post.read_text(encoding="utf-8")
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        if block.startswith("#!"):
            return str(block)
    raise SystemExit(f"seed_compare: no ```bash block starting with #! in {post}")


def patch_script(script: str, api_root: str, check_interval: float, idle_sleep: float) -> tuple[str, list[str]]:
    """Apply the three allowed patches; each must match, or the script is not the one expected."""
    patches = (
        (r"https://api\.openai\.com", api_root, "API host"),
        (r"(?m)^CHECK_INTERVAL=3600\b", f"CHECK_INTERVAL={check_interval:g}", "status check interval"),
        (r"(?m)^(\s*)sleep 60$", rf"\g<1>sleep {idle_sleep:g}", "idle sleep"),
    )
    applied: list[str] = []
    for pattern, replacement, what in patches:
        script, count = re.subn(pattern, replacement, script)
        if count == 0:
            raise SystemExit(f"seed_compare: the seed script has no {what} to patch ({pattern}); is it the right file?")
        shown = replacement.replace("\\g<1>", "")
        applied.append(f"{what}: /{pattern}/ -> {shown!r} ({count} place(s))")
    return script, applied


def make_drop(folder: Path, files: int, requests: int) -> list[str]:
    folder.mkdir(parents=True)
    names = [f"f{i:03d}.jsonl" for i in range(files)]
    for i, name in enumerate(names):
        write_requests(folder / name, count=requests, prefix=f"f{i}-")
    return names


def drop(staging: Path, pending: Path, names: list[str]) -> float:
    """Rename every file into the drop zone; return the monotonic time of the first rename."""
    start = time.monotonic()
    for name in names:
        os.rename(staging / name, pending / name)
    return start


def wait_until(done: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> bool:
    """True once ``done``; False on timeout or when the process under test died."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline or not alive():
            return False
        pause.wait(PAUSE)
    return True


def seed_results_done(results: Path, names: list[str]) -> bool:
    stems = {name.removesuffix(".jsonl") for name in names}
    found = {p.name.split("_batch_", 1)[0] for p in results.glob("*_results.jsonl") if p.stat().st_size > 0}
    return stems <= found


def count_lines(paths: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths)


def run_seed(root: Path, script: str, names: list[str], timeout: float) -> tuple[float | None, int]:
    """(seconds from drop to all results or None on timeout, result lines) of the patched script."""
    work = root / "seed"
    work.mkdir()
    (work / "batch_processor.sh").write_text(script, encoding="utf-8")
    with open(root / "seed.out", "wb") as out:
        # A session of its own, so a timeout can end the script with its curl, jq and sleep children.
        command = ["bash", "batch_processor.sh"]
        proc = subprocess.Popen(command, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        alive = lambda: proc.poll() is None  # noqa: E731
        if not wait_until((work / "batch_processor.log").exists, 30, alive):
            raise SystemExit(f"seed_compare: the seed script did not start; see {root / 'seed.out'}")
        start = drop(root / "staging-seed", work / "pending_upload", names)
        finished = wait_until(lambda: seed_results_done(work / "batch_results", names), timeout, alive)
        seconds = time.monotonic() - start if finished else None
        return seconds, count_lines(list((work / "batch_results").glob("*_results.jsonl")))
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """The script runs curl, jq and sleep as children: end its whole session (which we started)."""
    with contextlib.suppress(ProcessLookupError):  # the session may already be gone
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def run_batchd(root: Path, url: str, names: list[str], interval: float, timeout: float) -> tuple[float | None, int]:
    work = root / "batchd"
    work.mkdir()
    settings = {"poll_interval": interval, "first_poll_after": interval, "scan_interval": 1, "min_file_age": 1}
    results = [work / "batch_results" / name.removesuffix(".jsonl") / "results.jsonl" for name in names]
    with DaemonProcess(work, url, settings) as daemon:
        daemon.wait_for_event("daemon_started", timeout=60)
        start = drop(root / "staging-batchd", work / "pending_upload", names)
        finished = wait_until(lambda: all(p.exists() for p in results), timeout, daemon.running)
        seconds = time.monotonic() - start if finished else None
        return seconds, count_lines([p for p in results if p.exists()])


def main() -> None:
    args = parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        hint = f"install it (e.g. apt-get install {' '.join(missing)}) and run again"
        sys.exit(f"seed_compare: the seed script needs {', '.join(missing)}; {hint}")
    if not args.seed_script.is_file():
        sys.exit(f"seed_compare: no seed post at {args.seed_script}; pass --seed-script PATH")
    root = scratch()
    try:
        with EmulatorServer(EMULATOR) as emulator:
            script, patches = patch_script(extract_script(args.seed_script), emulator.url, args.interval, args.interval)
            print("seed_compare, patches applied to the seed script:")
            for line in patches:
                print(f"  {line}")
            compare(root, emulator, script, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare(root: Path, emulator: EmulatorServer, script: str, args: argparse.Namespace) -> None:
    expected = args.files * args.requests
    names = make_drop(root / "staging-seed", args.files, args.requests)
    make_drop(root / "staging-batchd", args.files, args.requests)
    seed_s, seed_lines = run_seed(root, script, names, args.timeout)
    batchd_s, batchd_lines = run_batchd(root, emulator.base_url, names, args.interval, args.timeout)
    drop_size = f"{args.files} files x {args.requests} requests"
    print(f"seed_compare, {drop_size}, same emulator, check/poll interval {args.interval:g} s:")
    print(f"  seed script: {_seconds(seed_s, args.timeout)} ({seed_lines}/{expected} result lines)")
    print(f"  batchd:      {_seconds(batchd_s, args.timeout)} ({batchd_lines}/{expected} result lines)")
    for caveat in CAVEATS:
        print(f"  note: {caveat}")
    if seed_s is None or batchd_s is None:
        print(verdict(False, "both finished within the timeout (no ratio)"))
        return
    ratio = seed_s / batchd_s
    print(f"  ratio seed/batchd: {ratio:.1f}x")
    print(verdict(ratio >= SPEEDUP_TARGET, f"batchd {ratio:.1f}x >= {SPEEDUP_TARGET:g}x faster than the seed script"))


def _seconds(value: float | None, timeout: float) -> str:
    return f"{value:.1f} s" if value is not None else f"not finished after {timeout:g} s (stopped)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed-script", type=Path, default=DEFAULT_SEED, help="the blog post holding the script")
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--requests", type=int, default=10, help="requests per file")
    parser.add_argument("--interval", type=float, default=1.0, help="check/poll interval for both, seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop a tool after this many seconds")
    return parser.parse_args()


if __name__ == "__main__":
    main()
