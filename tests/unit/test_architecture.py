"""docs/architecture.md shows the import graph and the modules as the code has them, and draws an
import that points back as one."""

from __future__ import annotations

import re

from tests import import_map
from tests.unit.test_layers import DAEMON

REGENERATE = f"docs/architecture.md is out of date with the code: regenerate it with `.venv/bin/{import_map.COMMAND}`"


def test_the_doc_shows_the_floors_and_modules_as_they_are() -> None:
    shown = import_map.current_section(import_map.DOC.read_text(encoding="utf-8"))
    assert shown == import_map.generated(), REGENERATE


def test_the_picture_has_no_arrow_pointing_back() -> None:
    edges = import_map.floor_edges(import_map.read_imports(import_map.read_modules()))
    assert [edge for edge in edges if import_map.points_back(*edge)] == []
    assert edges[("cli", "engine")] > 0  # the graph is read, not empty
    assert "No arrow points back." in import_map.generated()


def test_an_import_pointing_back_is_drawn_as_one() -> None:
    imports = [
        ("daemon.intake.claim", "daemon.state.store"),
        ("daemon.intake.claim", "daemon.state.store"),  # the same pair counts once
        ("daemon.intake.packer", "daemon.state.store"),
        ("daemon.state.store", "daemon.results.summary"),
        ("daemon.emulator.server", "daemon.config"),
        ("daemon.cli.main", "daemon.emulator"),
        ("daemon.state.store", "daemon.state.rows"),  # within a floor: no arrow
    ]
    edges = import_map.floor_edges(imports)
    assert edges == {
        ("intake", "state"): 2,
        ("state", "results"): 1,
        ("emulator", "foundation"): 1,
        ("cli", "emulator"): 1,
    }
    drawn = import_map.mermaid(import_map.read_modules(), edges)
    assert "intake -->|2| state" in drawn
    assert "state -->|BACK: 1| results" in drawn
    assert "emulator -.->|BACK: 1| foundation" in drawn
    assert "cli -.->|1| emulator" in drawn
    assert drawn.count("stroke:red") == 2


def test_sizes_are_rounded_so_ordinary_edits_leave_the_doc_alone() -> None:
    sizes = [import_map.rounded(n, 50) for n in (3, 49, 50, 74, 75, 124, 1260)]
    assert sizes == ["< 50", "< 50", "~50", "~50", "~100", "~100", "~1,250"]
    assert import_map.first_sentence("The store.\n\nMore. Text.") == "The store."
    assert import_map.first_sentence("A ``name`` | x. Then more.") == "A `name` \\| x."


def test_every_module_the_map_names_exists() -> None:
    """The hand-written map names modules by their path under daemon/ (or the repository, or a bare name
    in a floor's line): a rename must carry the map along."""
    text = import_map.DOC.read_text(encoding="utf-8")
    handwritten = text.replace(import_map.current_section(text), "")
    named = set(re.findall(r"`([\w/]+\.py)`", handwritten))
    assert len(named) > 40
    bare = {path.name for path in DAEMON.rglob("*.py")}
    root = DAEMON.parent
    missing = sorted(n for n in named if not ((DAEMON / n).is_file() or (root / n).is_file() or n in bare))
    assert missing == [], f"docs/architecture.md names modules that do not exist under daemon/: {missing}"


def test_each_row_of_the_hand_written_tables_is_there_once() -> None:
    """A command or a behaviour has one row naming all its modules: rows added by separate changes
    are merged, so a reader finds everything in one place."""
    text = import_map.DOC.read_text(encoding="utf-8")
    handwritten = text.replace(import_map.current_section(text), "")
    firsts = [line.split(" | ")[0].removeprefix("| ") for line in handwritten.splitlines() if line.startswith("| ")]
    assert len(firsts) > 30
    repeated = sorted({first for first in firsts if firsts.count(first) > 1})
    assert repeated == [], f"docs/architecture.md has these rows more than once: {repeated}"
