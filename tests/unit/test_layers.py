"""The daemon's floors: imports point one way only, and the emulator imports nothing of the daemon.

Floors, lowest first: the foundation (the modules directly in daemon/), state/, intake/, service/,
results/, ops/, engine/, cli/. A module may import its own floor and the floors below it, at module
level or inside a function alike; daemon/__main__.py is the cli. The emulator (daemon/emulator/) stands
outside the floors: any floor may start it, and it imports nothing of the daemon.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
FLOORS = ("foundation", "state", "intake", "service", "results", "ops", "engine", "cli")
EMULATOR = "daemon.emulator"


def module_name(path: Path) -> str:
    rel = path.relative_to(DAEMON.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def floor(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] == "__main__":
        return FLOORS.index("cli")
    return FLOORS.index(parts[1]) if parts[1] in FLOORS else 0


def daemon_imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of the daemon in the file, function-local ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
            base = node.module or ""
            names = [f"daemon.{alias.name}" for alias in node.names] if base == "daemon" else [base]
        else:
            continue
        for name in names:
            if name == "daemon" or name.startswith("daemon."):
                yield node.lineno, name


def sources(emulator: bool) -> list[Path]:
    return [p for p in sorted(DAEMON.rglob("*.py")) if module_name(p).startswith(EMULATOR) == emulator]


def test_imports_point_down_the_floors_only() -> None:
    back = []
    for path in sources(emulator=False):
        here = module_name(path)
        for line, target in daemon_imports(path):
            if not target.startswith(EMULATOR) and floor(target) > floor(here):
                back.append(f"{path.relative_to(DAEMON.parent)}:{line}: {FLOORS[floor(here)]} imports {target}")
    assert back == []


def test_the_emulator_imports_nothing_of_the_daemon() -> None:
    found = [
        f"{path.relative_to(DAEMON.parent)}:{line}: {target}"
        for path in sources(emulator=True)
        for line, target in daemon_imports(path)
        if not target.startswith(EMULATOR)
    ]
    assert found == []


def test_every_module_is_on_a_known_floor() -> None:
    """A new subpackage must be given a floor (here and in the issue's order) before it is used."""
    packages = {p.name for p in DAEMON.iterdir() if (p / "__init__.py").exists()} - {"emulator"}
    assert packages <= set(FLOORS[1:])
