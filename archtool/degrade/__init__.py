"""Seeded simulation of archival defects with ground-truth labels (``archtool degrade``).

Public API::

    from archtool.degrade import Degrader, load_recipe, apply_unit, list_units, list_recipes
    deg = Degrader("mixed-archive", noise_dir=None, rir_dir=None, background_dir=None)
    degraded, labels = deg(clean, sample_rate, np.random.default_rng(0))
    y, label = apply_unit("hum", clean, 16000, {"freq_hz": 60, "snr_db": 20}, rng)

Units live one per module in :mod:`archtool.degrade.units`; recipes are TOML files
(:mod:`archtool.degrade.recipe`), the built-in ones in ``archtool/recipes/degrade``.
"""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import Param, Unit, all_units, get_unit
from archtool.degrade.corpus import CorpusResult, degrade_corpus
from archtool.degrade.degrader import Degrader, apply_unit, true_snr_db
from archtool.degrade.recipe import Recipe, builtin_recipes, load_recipe, parse_recipe
from archtool.degrade.sources import Sources


def list_units() -> dict[str, dict]:
    """Every unit: ``{name: {"kind", "summary", "doc", "params": {param: "range (default): meaning"}}}``.

    ``doc`` is the unit's full docstring, which states how its 0..1 severity is defined.
    """
    import inspect

    return {name: {"kind": u.kind, "also_labels": list(u.extra_kinds), "summary": u.summary, "doc": inspect.cleandoc(u.apply.__doc__ or ""),
                   "params": {k: p.describe() for k, p in u.params.items()}}
            for name, u in sorted(all_units().items())}


def degrade_audio(clean: np.ndarray, sample_rate: int, recipe: str = "mixed-archive", seed: int = 0,
                  **folders) -> tuple[np.ndarray, dict]:
    """One-shot convenience: degrade float32 ``(channels, samples)`` audio with ``recipe`` and ``seed``.

    ``folders`` may give noise_dir, rir_dir, background_dir. For loops, build a Degrader once.
    """
    return Degrader(recipe, **folders)(clean, sample_rate, np.random.default_rng(seed))


def list_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return builtin_recipes()


__all__ = ["Degrader", "apply_unit", "degrade_audio", "degrade_corpus", "CorpusResult", "list_units", "list_recipes", "load_recipe", "parse_recipe", "Recipe",
           "Sources", "Param", "Unit", "get_unit", "true_snr_db"]
