"""Every test file sits in a tier: `make test` runs tests/unit, tests/integration and tests/system only."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("unit", "integration", "system")


def test_every_test_file_is_in_a_tier() -> None:
    found = (path.relative_to(TESTS) for path in TESTS.rglob("test_*.py"))
    stray = sorted(str(path) for path in found if path.parts[0] not in TIERS)
    assert stray == [], f"make test would skip these; move them into tests/unit, integration or system: {stray}"
