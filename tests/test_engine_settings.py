"""The settings hash decides resume: it must change when anything that changes output changes."""
from __future__ import annotations

from pathlib import Path

from archtool.engine.settings import RestoreSettings


def test_hash_is_stable_and_ignores_block_size():
    assert RestoreSettings().hash() == RestoreSettings().hash()
    assert RestoreSettings(block_s=1.0).hash() == RestoreSettings(block_s=30.0).hash()
    assert RestoreSettings(target_lufs=-16).hash() != RestoreSettings().hash()


def test_hash_follows_the_contents_of_gap_lists_and_preset_files(tmp_path: Path):
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("1.0,1.2\n")
    before = RestoreSettings(gaps_file=str(gaps)).hash()
    gaps.write_text("1.0,1.5\n")
    assert RestoreSettings(gaps_file=str(gaps)).hash() != before
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "auto"\n')
    first = RestoreSettings(preset=str(preset)).hash()
    preset.write_text('extends = "conservative"\n')
    assert RestoreSettings(preset=str(preset)).hash() != first
