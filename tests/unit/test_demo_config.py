"""config/demo.toml has split_by_model ready at its top level, commented out: a user who takes the #
off turns it on for every profile. Appended at the file's end it would land in the last table
([providers.azure]) and leave the default profile's mixed inputs rejected."""

from __future__ import annotations

from pathlib import Path

from daemon.config import load_settings

DEMO_CONFIG = Path(__file__).parents[2] / "config" / "demo.toml"


def test_taking_the_hash_off_splits_by_model_on_every_profile(tmp_path: Path) -> None:
    text = DEMO_CONFIG.read_text()
    assert "\n# split_by_model = true\n" in text
    config = tmp_path / "demo.toml"
    config.write_text(text.replace("\n# split_by_model = true\n", "\nsplit_by_model = true\n"))
    settings = load_settings(config, environ={})
    assert settings.split_by_model and settings.splits_by_model("default") and settings.splits_by_model("azure")


def test_as_shipped_the_demo_keeps_one_model_a_file() -> None:
    settings = load_settings(DEMO_CONFIG, environ={})
    assert not settings.splits_by_model("default") and not settings.splits_by_model("azure")
