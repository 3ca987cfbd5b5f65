"""The Degrader: applies a recipe (or explicit units) to clean audio and returns ground-truth labels.

Example::

    from archtool.degrade import Degrader
    deg = Degrader("78rpm")                       # or a TOML path; folders are optional
    degraded, labels = deg(clean, 16000, np.random.default_rng(0))

``clean`` is float32 ``(channels, samples)``; ``degraded`` has the same shape. ``labels``
(JSON-serialisable) holds: ``recipe``, ``variant``, ``units`` (each ``unit``, ``kind``,
``params``, ``severity``, ``measured``), ``kinds`` ({kind: max severity}), ``snr_db``
(degraded vs the clean reference, after the wow time map when wow was applied; null when
nothing changed), ``gap_intervals_s``, ``cutoff_hz``, ``clipped_fraction`` and, after
wow, ``time_map``.

Units run in the physical chain order (see ``archtool.degrade.base``: reverb, background,
wow, the medium's noises, band limits, codec, DC, gaps, clipping), so the labels hold on
the final output: gap samples are exactly zero, energy above ``cutoff_hz`` is removed by
the band limit, ``clipped_fraction`` counts samples at the clipper's rail. A recipe with
``order = "written"`` may break this (e.g. noise written after gaps fills them), and the
labels then describe each unit at its own place in the chain.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from archtool.degrade.base import ensure_2d, get_unit
from archtool.degrade.recipe import Recipe, load_recipe
from archtool.degrade.sources import Sources
from archtool.degrade.units.wow import TIME_MAP_STEP_S, Warp


def jsonable(value: Any) -> Any:
    """Plain-Python copy of ``value``: numpy scalars/arrays converted, non-finite floats -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def apply_unit(name: str, audio: np.ndarray, sample_rate: int, params: dict | None,
               rng: np.random.Generator, sources: Sources | None = None) -> tuple[np.ndarray, dict]:
    """Apply one unit with explicit ``params`` (missing ones take their defaults).

    Returns ``(float32 audio of the same shape, label dict)``. Raises UnknownNameError for
    an unknown unit and ValueError for a bad parameter.
    """
    unit = get_unit(name)
    audio = ensure_2d(audio)
    resolved = unit.resolve(params)
    out, label = unit.apply(audio, int(sample_rate), resolved, rng, sources)
    out = np.asarray(out, dtype=np.float32)
    if out.shape != audio.shape:
        raise AssertionError(f"unit {name!r} changed the shape {audio.shape} -> {out.shape}")
    return out, {k: v for k, v in label.items() if not k.startswith("_")}


def true_snr_db(reference: np.ndarray, degraded: np.ndarray) -> float | None:
    """10 log10(P(reference) / P(degraded - reference)); None when identical or reference silent."""
    ref = reference.astype(np.float64)
    err = degraded.astype(np.float64) - ref
    pe = float(np.mean(err ** 2))
    pr = float(np.mean(ref ** 2))
    if pe == 0 or pr == 0:
        return None
    return 10 * math.log10(pr / pe)


class Degrader:
    """Draws a recipe's units per call and applies them; decoded source files are cached per rate.

    ``recipe``: a built-in name (``list_recipes()``), a TOML path or a :class:`Recipe`.
    ``noise_dir`` (78 RPM groove noise), ``rir_dir`` (impulse responses) and
    ``background_dir`` (background recordings) are optional; without them the units
    generate synthetic material.
    """

    def __init__(self, recipe: str | Path | Recipe, noise_dir: str | Path | None = None,
                 rir_dir: str | Path | None = None, background_dir: str | Path | None = None):
        self.recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        self.sources = Sources(noise_dir, rir_dir, background_dir)

    def __call__(self, clean: np.ndarray, sample_rate: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        variant, chain = self.recipe.draw(rng)
        degraded, labels = self.apply_chain(clean, sample_rate, chain, rng)
        return degraded, {"recipe": self.recipe.name, "variant": variant} | labels

    def apply_chain(self, clean: np.ndarray, sample_rate: int, chain: list[tuple[str, dict]],
                    rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Apply ``[(unit, params), ...]`` in order; returns (degraded, labels without recipe keys)."""
        clean = ensure_2d(clean)
        c, n = clean.shape
        audio = clean
        reference = clean
        positions: np.ndarray | None = None
        units: list[dict] = []
        kinds: dict[str, float] = {}
        gap_mask = np.zeros(n, dtype=bool)
        cutoffs: list[float] = []
        clipped = 0.0
        for name, params in chain:
            unit = get_unit(name)
            resolved = unit.resolve(params)
            audio, label = unit.apply(audio, int(sample_rate), resolved, rng, self.sources)
            audio = np.asarray(audio, dtype=np.float32)
            label = dict(label)
            pos = label.pop("_positions", None)
            reader = label.pop("_warp", None)
            if pos is not None:
                label.pop("time_map", None)  # the composed map is reported once, at top level
                reader = reader or Warp(pos, n)
                reference = reader(reference).astype(np.float32)
                if gap_mask.any():
                    # a sample stays a gap only if every input sample it interpolates from was one
                    gap_mask = np.abs(reader((~gap_mask)[None].astype(np.float64))[0]) < 1e-12
                positions = pos if positions is None else np.interp(pos, np.arange(n), positions)
            severity = float(label.pop("severity"))
            unit_kinds = label.pop("kinds", {unit.kind: severity})
            for k, s in unit_kinds.items():
                if s > 0:  # a unit that changed nothing (no click fell in the clip...) is not a defect
                    kinds[k] = max(kinds.get(k, 0.0), float(s))
            for a, b in label.get("gap_intervals_s", []):
                gap_mask[int(round(a * sample_rate)):int(round(b * sample_rate))] = True
            if label.get("cutoff_hz") is not None:
                cutoffs.append(float(label["cutoff_hz"]))
            if "clipped_fraction" in label:
                clipped = float(label["clipped_fraction"])
            units.append({"unit": name, "kind": unit.kind, "params": resolved, "severity": severity,
                          "measured": label})
        from archtool.degrade.units.gaps import mask_to_intervals

        labels: dict = {
            "sample_rate": int(sample_rate), "channels": c, "duration_s": n / sample_rate,
            "units": units, "kinds": kinds,
            "snr_db": true_snr_db(reference, audio),
            "snr_reference": "clean" if positions is None else "clean after the wow time map",
            "gap_intervals_s": mask_to_intervals(gap_mask, sample_rate),
            "cutoff_hz": min(cutoffs) if cutoffs else None,
            "clipped_fraction": clipped,
        }
        if positions is not None:
            step = max(1, int(round(TIME_MAP_STEP_S * sample_rate)))
            labels["time_map"] = {"step_s": step / sample_rate,
                                  "input_s": [round(float(v), 7) for v in positions[::step] / sample_rate]}
        return audio, jsonable(labels)
