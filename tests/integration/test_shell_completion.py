"""`batchd completion bash` run by bash itself, and a closed pipe seen from a shell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli.completion import completion_script
from daemon.cli.main import build_parser


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers after ``words`` (the last one is being typed)."""
    line = " ".join(f"'{w}'" for w in ("batchd", *words))
    program = (
        f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _batchd; printf "%s\\n" "${{COMPREPLY[@]}}"'
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return [word for word in done.stdout.splitlines() if word]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_commands_options_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "batchd.bash"
    script.write_text(completion_script(build_parser(), "bash"))
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    assert {"run", "validate", "status", "retry", "completion", "help"} <= set(_complete(script, ""))
    assert _complete(script, "ru") == ["run"]
    assert _complete(script, "run", "--watch-m") == ["--watch-mode"]
    assert _complete(script, "run", "--watch-mode", "") == ["auto", "inotify", "polling"]
    assert _complete(script, "completion", "") == ["bash", "zsh"]
    assert "exit-codes" in _complete(script, "help", "")
    assert "--failed" in _complete(script, "retry", "--root", "x", "--")


def test_a_reader_that_goes_away_leaves_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("oops\n" * 200)  # 100 problem lines printed per file
    files = " ".join([str(bad)] * 60)  # far more than a pipe holds
    command = f"{sys.executable} -m daemon validate {files} | head -1"
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith(str(bad))
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="needs zsh")
def test_the_zsh_script_parses(tmp_path: Path) -> None:
    script = tmp_path / "_batchd"
    script.write_text(completion_script(build_parser(), "zsh"))
    done = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
