"""Recipes: TOML files that draw degradation units and their parameters at random.

Format (every key optional except ``unit``)::

    name = "my-recipe"
    description = "what it simulates"
    order = "chain"          # "chain": run units in the physical chain order; "written": file order

    [[variant]]              # one case of the corpus; drawn with probability ~ weight
    name = "blend"
    weight = 0.5
    pick = [1, 3]            # draw 1..3 distinct units (by their weight); without pick, each unit
                             # is applied independently with its probability
    [[variant.units]]
    unit = "noise"           # a unit name (``archtool.degrade.list_units()``)
    probability = 1.0        # used when the variant has no pick
    weight = 1.0             # used when the variant has a pick
    snr_db = { uniform = [5, 30] }     # any other key is a unit parameter:
    colour = ["white", "pink"]         #   a fixed value, a list (uniform choice), or a table with
                                       #   one of uniform / loguniform / randint / choice = [...]

A recipe with a single case may put ``[[units]]`` at top level instead of ``[[variant]]``.
Every problem (unknown unit or parameter, out-of-range value, wrong type, TOML syntax)
raises :class:`archtool.errors.RecipeError` naming the file, the line and the problem.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from archtool.degrade.base import Param, all_units
from archtool.errors import RecipeError, UnknownNameError

DIST_KINDS = ("uniform", "loguniform", "randint", "choice")
UNIT_KEYS = ("unit", "probability", "weight")


@dataclass(frozen=True)
class Dist:
    """How one parameter is drawn: fixed value, uniform, log-uniform, integer range or choice."""

    kind: str
    args: tuple

    def sample(self, rng: np.random.Generator) -> Any:
        if self.kind == "fixed":
            return self.args[0]
        if self.kind == "uniform":
            return float(rng.uniform(self.args[0], self.args[1]))
        if self.kind == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.args[0]), np.log(self.args[1]))))
        if self.kind == "randint":
            return int(rng.integers(self.args[0], self.args[1] + 1))
        return self.args[int(rng.integers(len(self.args)))]


@dataclass(frozen=True)
class UnitSpec:
    """One unit entry of a variant."""

    unit: str
    params: dict[str, Dist]
    probability: float = 1.0
    weight: float = 1.0

    def sample_params(self, rng: np.random.Generator) -> dict:
        return {k: d.sample(rng) for k, d in self.params.items()}


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    pick: tuple[int, int] | None
    units: tuple[UnitSpec, ...]


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe."""

    name: str
    description: str
    path: str
    order: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)

    def draw(self, rng: np.random.Generator) -> tuple[str, list[tuple[str, dict]]]:
        """Choose a variant and its units with parameters: ``(variant name, [(unit, params), ...])``.

        Units come back in the order they will run (chain order unless ``order = "written"``).
        """
        weights = np.array([v.weight for v in self.variants], dtype=np.float64)
        variant = self.variants[int(rng.choice(len(self.variants), p=weights / weights.sum()))]
        if variant.pick is not None:
            k = int(rng.integers(variant.pick[0], variant.pick[1] + 1))
            k = min(k, len(variant.units))
            w = np.array([u.weight for u in variant.units], dtype=np.float64)
            positive = int(np.count_nonzero(w))
            k = min(k, positive)
            idx = sorted(rng.choice(len(variant.units), size=k, replace=False, p=w / w.sum())) if k else []
            chosen = [variant.units[i] for i in idx]
        else:
            chosen = [u for u in variant.units if u.probability >= 1.0 or rng.random() < u.probability]
        chain = [(u.unit, u.sample_params(rng)) for u in chosen]
        if self.order == "chain":
            units = all_units()
            chain.sort(key=lambda item: units[item[0]].stage)  # stable: ties keep file order
        return variant.name, chain


# ------------------------------------------------------------------------------ loading

def builtin_recipe_dir() -> Path:
    """Folder of the recipes shipped inside the package."""
    return Path(str(resources.files("archtool") / "recipes" / "degrade"))


def builtin_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(p.stem for p in builtin_recipe_dir().glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a built-in recipe by name (``"78rpm"``) or a TOML file by path, validated."""
    text_name = str(name_or_path)
    path = Path(text_name)
    if not (path.suffix == ".toml" or path.exists() or "/" in text_name or "\\" in text_name):
        path = builtin_recipe_dir() / f"{text_name}.toml"
        if not path.is_file():
            raise UnknownNameError("degradation recipe", text_name, builtin_recipes())
    if not path.is_file():
        raise RecipeError(path, "recipe file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(path, f"cannot read the recipe: {exc}") from None
    return parse_recipe(text, path)


def parse_recipe(text: str, path: str | Path = "<recipe>") -> Recipe:
    """Parse and validate recipe TOML ``text`` (``path`` is used in error messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column \d+\)", msg)
        line = int(m.group(1)) if m else None
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg)
        raise RecipeError(path, f"TOML syntax error: {problem}", line) from None
    return _Validator(text, path).recipe(data)


class _Validator:
    """Turns parsed TOML into a Recipe, locating the line of every problem in the source text."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\- \"']+?)\s*\]\]?")

    def __init__(self, text: str, path: str | Path):
        self.path = path
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str]] = []  # (1-based line, header name)
        for i, ln in enumerate(self.lines, start=1):
            m = self._HEADER.match(ln)
            if m and not ln.strip().startswith("#"):
                self.headers.append((i, m.group(2).replace(" ", "")))
        self.units = all_units()

    # -- locating lines
    def _block(self, variant: int | None, unit: int | None) -> tuple[int, int]:
        """Line range [first, last] of a block: the top level, a variant, or one unit table."""
        end_of_file = len(self.lines)
        if variant is None and unit is None:
            first_header = self.headers[0][0] if self.headers else end_of_file + 1
            return 1, first_header - 1
        if variant is None:
            starts = [ln for ln, h in self.headers if h == "units"]
        else:
            vstarts = [ln for ln, h in self.headers if h == "variant"]
            if variant >= len(vstarts):
                return 1, end_of_file
            vstart = vstarts[variant]
            vend = vstarts[variant + 1] - 1 if variant + 1 < len(vstarts) else end_of_file
            if unit is None:
                nxt = [ln for ln, _ in self.headers if vstart < ln <= vend]
                return vstart, (nxt[0] - 1 if nxt else vend)
            starts = [ln for ln, h in self.headers if h == "variant.units" and vstart < ln <= vend]
        if unit >= len(starts):
            return 1, end_of_file
        start = starts[unit]
        nxt = [ln for ln, _ in self.headers if ln > start]
        return start, (nxt[0] - 1 if nxt else end_of_file)

    def line(self, variant: int | None, unit: int | None, key: str | None = None) -> int | None:
        first, last = self._block(variant, unit)
        if key is not None:
            pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
            for i in range(first, last + 1):
                if 1 <= i <= len(self.lines) and pat.match(self.lines[i - 1]):
                    return i
        return first if first >= 1 and first <= len(self.lines) else None

    def fail(self, problem: str, variant: int | None = None, unit: int | None = None,
             key: str | None = None) -> RecipeError:
        return RecipeError(self.path, problem, self.line(variant, unit, key))

    # -- validation
    def recipe(self, data: dict) -> Recipe:
        known_top = {"name", "description", "order", "variant", "units", "pick"}
        for key in data:
            if key not in known_top:
                raise self.fail(f"unknown top-level key {key!r} (known: {', '.join(sorted(known_top))})",
                                key=key)
        name = data.get("name", Path(str(self.path)).stem)
        description = data.get("description", "")
        order = data.get("order", "chain")
        for key, value in (("name", name), ("description", description), ("order", order)):
            if not isinstance(value, str):
                raise self.fail(f"{key!r} must be a string, got {type(value).__name__}", key=key)
        if order not in ("chain", "written"):
            raise self.fail(f"order must be 'chain' or 'written', not {order!r}", key="order")
        if "variant" in data and "units" in data:
            raise self.fail("use either [[variant]] tables or top-level [[units]], not both", key=None)
        variants: list[Variant] = []
        if "variant" in data:
            raw = data["variant"]
            if not isinstance(raw, list) or not raw:
                raise self.fail("'variant' must be a list of [[variant]] tables", key="variant")
            for vi, v in enumerate(raw):
                variants.append(self.variant(v, vi))
        else:
            variants.append(self.variant({k: data[k] for k in ("units", "pick") if k in data}, None))
        if sum(v.weight for v in variants) <= 0:
            raise self.fail("the variant weights sum to zero")
        return Recipe(name, description, str(self.path), order, tuple(variants))

    def variant(self, v: Any, vi: int | None) -> Variant:
        if not isinstance(v, dict):
            raise self.fail("each [[variant]] must be a table", vi)
        known = {"name", "weight", "pick", "units"} if vi is not None else {"units", "pick"}
        for key in v:
            if key not in known:
                raise self.fail(f"unknown variant key {key!r} (known: {', '.join(sorted(known))})", vi, key=key)
        name = v.get("name", f"variant{vi}" if vi is not None else "all")
        if not isinstance(name, str):
            raise self.fail("variant 'name' must be a string", vi, key="name")
        weight = v.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise self.fail(f"variant 'weight' must be a number >= 0, got {weight!r}", vi, key="weight")
        units_raw = v.get("units", [])
        if not isinstance(units_raw, list):
            raise self.fail("'units' must be a list of unit tables", vi, key="units")
        units = tuple(self.unit(u, vi, ui) for ui, u in enumerate(units_raw))
        pick = v.get("pick")
        if pick is not None:
            ok = (isinstance(pick, list) and len(pick) == 2 and all(isinstance(p, int) and not isinstance(p, bool)
                                                                   for p in pick) and 0 <= pick[0] <= pick[1])
            if isinstance(pick, int) and not isinstance(pick, bool) and pick >= 0:
                pick, ok = [pick, pick], True
            if not ok:
                raise self.fail(f"'pick' must be [min, max] integers with 0 <= min <= max, got {pick!r}",
                                vi, key="pick")
            if pick[1] > 0 and not any(u.weight > 0 for u in units):
                raise self.fail("'pick' needs at least one unit with weight > 0", vi, key="pick")
            pick = (int(pick[0]), int(pick[1]))
        return Variant(name, float(weight), pick, units)

    def unit(self, u: Any, vi: int | None, ui: int) -> UnitSpec:
        if not isinstance(u, dict):
            raise self.fail("each unit entry must be a table", vi)
        if "unit" not in u:
            raise self.fail("unit table has no 'unit' key naming the degradation", vi, ui)
        name = u["unit"]
        if not isinstance(name, str) or name not in self.units:
            import difflib

            close = difflib.get_close_matches(str(name), list(self.units), n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.fail(f"unknown unit {name!r}{hint}; known units: {', '.join(sorted(self.units))}",
                            vi, ui, "unit")
        spec_params = self.units[name].params
        for key in ("probability", "weight"):
            value = u.get(key, 1.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= (
                    1 if key == "probability" else float("inf")):
                limit = "between 0 and 1" if key == "probability" else ">= 0"
                raise self.fail(f"{key!r} must be a number {limit}, got {value!r}", vi, ui, key)
        params: dict[str, Dist] = {}
        for key, value in u.items():
            if key in UNIT_KEYS:
                continue
            if key not in spec_params:
                raise self.fail(f"unit {name!r} has no parameter {key!r} (parameters: "
                                f"{', '.join(sorted(spec_params))})", vi, ui, key)
            params[key] = self.dist(name, key, spec_params[key], value, vi, ui)
        return UnitSpec(name, params, float(u.get("probability", 1.0)), float(u.get("weight", 1.0)))

    def dist(self, unit: str, key: str, spec: Param, value: Any, vi: int | None, ui: int) -> Dist:
        where = f"unit {unit!r} parameter {key!r}"

        def check(v: Any) -> None:
            problem = spec.check(v)
            if problem:
                raise self.fail(f"{where}: {problem}", vi, ui, key)

        if isinstance(value, list):
            if not value:
                raise self.fail(f"{where}: an empty list has nothing to choose from", vi, ui, key)
            for v in value:
                check(v)
            return Dist("choice", tuple(value))
        if isinstance(value, dict):
            if len(value) != 1 or next(iter(value)) not in DIST_KINDS:
                raise self.fail(f"{where}: a table must have exactly one of {', '.join(DIST_KINDS)}",
                                vi, ui, key)
            kind, args = next(iter(value.items()))
            if not isinstance(args, list) or not args:
                raise self.fail(f"{where}: {kind} needs a list, e.g. {kind} = [1, 2]", vi, ui, key)
            if kind == "choice":
                for v in args:
                    check(v)
                return Dist("choice", tuple(args))
            if len(args) != 2:
                raise self.fail(f"{where}: {kind} needs exactly two bounds [low, high]", vi, ui, key)
            if kind in ("uniform", "loguniform") and spec.type is not float:
                raise self.fail(f"{where}: {kind} needs a real-valued parameter; this one is "
                                f"{spec.type.__name__} (use randint or choice)", vi, ui, key)
            if kind == "randint" and spec.type is not int:
                raise self.fail(f"{where}: randint needs an integer parameter; this one is "
                                f"{spec.type.__name__}", vi, ui, key)
            for v in args:
                check(v)
            lo, hi = args
            if lo > hi:
                raise self.fail(f"{where}: {kind} bounds [{lo}, {hi}] are reversed", vi, ui, key)
            if kind == "loguniform" and lo <= 0:
                raise self.fail(f"{where}: loguniform bounds must be > 0", vi, ui, key)
            return Dist(kind, (lo, hi))
        check(value)
        return Dist("fixed", (value,))
