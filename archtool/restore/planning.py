"""Plan one file's restoration: the hook the engine calls before processing a file.

``plan_file`` analyses the file (:func:`archtool.analyze.analyze_file`, streamed), adds the
user's listed gaps (``--gaps``), and turns the profile into ordered steps with the
preset (:func:`archtool.restore.plan.make_plan`). Restorer options given on the command
line (``options`` beyond ``gaps_file``) are added to the parameters of every step whose
restorer is named in the option (``bwe_gain`` -> ``bwe``) or, for plain names, to all steps.
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


def step_record(step: Step, sample_rate: int, n_samples: int | None = None) -> dict[str, Any]:
    """A step as reports and sidecars record it: restorer, params, reason, plus what the
    restorer can say in advance about its work (its optional ``describe(params, sample_rate,
    n_samples) -> dict``; the inpainting restorer lists every interval it fills and how)."""
    from archtool.restore.registry import list_restorers, restorer_class

    rec = step.to_dict()
    if step.restorer in list_restorers():
        describe = getattr(restorer_class(step.restorer), "describe", None)
        if describe is not None:
            rec.update(describe(step.params, sample_rate, n_samples))
    return rec


def plan_file(path: Path, info: AudioInfo, preset: str, options: dict[str, Any]) -> Plan:
    """Plan the restoration of ``path`` with ``preset`` (name or TOML path).

    The preset ``none`` plans no restoration at all (loudness normalisation only).
    ``options`` carries CLI-level restorer options (e.g. user gap lists).
    """
    if preset == NO_RESTORATION:
        return Plan(notes=["preset none: loudness only"])
    from archtool.analyze import analyze_file
    from archtool.restore.plan import make_plan
    from archtool.restore.presets import load_preset

    p = load_preset(preset)  # bad presets fail before the (slower) analysis
    profile = analyze_file(path)
    notes: list[str] = []
    gaps_file = options.get("gaps_file")
    if gaps_file:
        from archtool.restore.gaplist import read_gap_list, with_user_gaps

        intervals = read_gap_list(gaps_file).intervals_for(path)
        if intervals:
            profile = with_user_gaps(profile, intervals)
            notes.append(f"{len(intervals)} gap interval(s) from {gaps_file}")
    steps = make_plan(profile, p)
    extra = {k: v for k, v in options.items() if k != "gaps_file" and v is not None}
    for step in steps:
        for k, v in extra.items():
            prefix = k.split("_", 1)[0]
            if "_" not in k or step.restorer in _OPTION_TARGETS.get(prefix, (prefix,)):
                step.params.setdefault(k, _option_value(v))
    if not steps:
        notes.append(f"preset {p.name}: no defect called for restoration")
    return Plan(steps=steps, profile=profile, notes=notes)


# Restorers an option prefix reaches besides the one of the same name: `enhance` also
# generates the extension band, so --bwe-gain sets its level too.
_OPTION_TARGETS = {"bwe": ("bwe", "enhance")}


def _option_value(v: Any) -> Any:
    """CLI option strings as numbers/bools where they read as such."""
    if not isinstance(v, str):
        return v
    low = v.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(low) if low.lstrip("+-").isdigit() else float(low)
    except ValueError:
        return v
