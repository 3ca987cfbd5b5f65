"""Plan one file's restoration: the hook the engine calls before processing a file.

``plan_file`` returns the ordered steps (and the analysis they came from). With no
restorers installed the chain is empty and ``restore`` only normalises loudness.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archtool.analyze.profile import Profile
from archtool.audio.io import AudioInfo
from archtool.restore.base import Step


NO_RESTORATION = "none"


@dataclass
class Plan:
    """The steps for one file, the profile they were planned from, and notes for the report."""

    steps: list[Step] = field(default_factory=list)
    profile: Profile | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [s.to_dict() for s in self.steps],
            "profile": self.profile.to_dict() if self.profile else None,
            "notes": list(self.notes),
        }


def plan_file(path: Path, info: AudioInfo, preset: str, options: dict[str, Any]) -> Plan:
    """Plan the restoration of ``path`` with ``preset`` (name or TOML path).

    The preset ``none`` plans no restoration at all (loudness normalisation only).
    ``options`` carries CLI-level restorer options (e.g. user gap lists).
    """
    if preset == NO_RESTORATION:
        return Plan(notes=["preset none: loudness only"])
    return Plan()
