"""Restoration presets: TOML files mapping defect kinds to restorers and parameter rules.

The format is documented in :mod:`archtool.restore.plan`. Built-in presets live in
``archtool/recipes/restore/`` (``recipes/restore/`` in the repository links to them);
``load_preset`` takes a built-in name or a path to a user's ``.toml`` file.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from archtool.errors import RecipeError, UnknownNameError
from archtool.kinds import KINDS

# Where a step goes in the chain when the preset does not say (lower runs first):
# declipping sees the raw waveform (its clip level was measured on it); DC and rumble
# next; impulsive cleanup before anything that smears impulses; inpainting after it;
# hum before broadband noise; bandwidth extension last.
DEFAULT_ORDER: dict[str, float] = {
    "clipping": 5, "dc_offset": 8, "rumble": 10, "clicks": 30, "crackle": 35, "gaps": 40,
    "wow": 45, "hum": 50, "reverb": 55, "surface_noise": 60, "noise": 62, "background": 65,
    "bandlimit": 90,
}

_KIND_KEYS = {"restorer", "order", "min_severity", "min_confidence", "always", "params", "reason"}
_RULE_KEYS = {"measure", "lerp", "map", "default", "min", "max", "scale", "by", "if_detected"}
_TOP_KEYS = {"name", "description", "extends", "kinds", "options"}


@dataclass
class KindRule:
    """How one defect kind is treated: which restorer, when, where, with which params."""

    kind: str
    restorer: str
    order: float
    min_severity: float = 0.0
    min_confidence: float = 0.0
    always: bool = False
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Preset:
    """A parsed preset: name, description, per-kind rules and global options."""

    name: str
    description: str = ""
    kinds: dict[str, KindRule] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def builtin_dir() -> Path:
    """Folder of the presets shipped inside the package."""
    return Path(str(resources.files("archtool") / "recipes" / "restore"))


def builtin_presets() -> list[str]:
    """Names of the built-in presets."""
    d = builtin_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def load_preset(name_or_path: str | Path | Preset) -> Preset:
    """A built-in preset by name, or a user preset file (``.toml``).

    Raises:
        RecipeError: the file is not valid TOML or not a valid preset (names the line).
        UnknownNameError: no built-in preset has that name and no such file exists.
    """
    if isinstance(name_or_path, Preset):
        return name_or_path
    text_name = str(name_or_path)
    p = Path(text_name)
    if p.suffix.lower() == ".toml" or p.exists():
        if not p.is_file():
            raise RecipeError(p, "preset file not found")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(p, f"cannot read preset file ({exc})") from None
        return parse_preset(text, str(p))
    builtin = builtin_dir() / f"{text_name}.toml"
    if not builtin.is_file():
        raise UnknownNameError("restoration preset", text_name, builtin_presets())
    return parse_preset(builtin.read_text(encoding="utf-8"), str(builtin))


def _line_of(text: str, table: str | None, key: str | None = None) -> int | None:
    """1-based line of ``key`` inside TOML table ``table`` (or of the table header)."""
    current: str | None = None
    header_line = None
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?$", line)
        if m:
            current = m.group(1).replace(" ", "").replace('"', "")
            if table is not None and current == table:
                header_line = i
                if key is None:
                    return i
            continue
        if key is None:
            continue
        m = re.match(r"^([A-Za-z0-9_.\"-]+)\s*=", line)
        if not m:
            continue
        full = m.group(1).replace('"', "")
        if current is not None:
            full = f"{current}.{full}"
        target = f"{table}.{key}" if table else key
        if full == target or full.startswith(target + "."):
            return i
    return header_line


def parse_preset(text: str, path: str = "<preset>") -> Preset:
    """Parse preset TOML ``text`` (``path`` is used in error messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise RecipeError(path, f"invalid TOML: {exc}", int(m.group(1)) if m else None) from None

    def fail(problem: str, table: str | None = None, key: str | None = None) -> RecipeError:
        return RecipeError(path, problem, _line_of(text, table, key))

    for k in data:
        if k not in _TOP_KEYS:
            raise fail(f"unknown top-level key {k!r} (expected one of {', '.join(sorted(_TOP_KEYS))})", None, k)
    base: Preset | None = None
    if "extends" in data:
        if not isinstance(data["extends"], str):
            raise fail("'extends' must be the name of a built-in preset", None, "extends")
        try:
            base = load_preset(data["extends"])
        except UnknownNameError as exc:
            raise fail(str(exc), None, "extends") from None
    name = data.get("name", Path(path).stem)
    if not isinstance(name, str):
        raise fail("'name' must be a string", None, "name")
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise fail("'options' must be a table", None, "options")
    preset = Preset(name=name, description=str(data.get("description", base.description if base else "")),
                    kinds=dict(base.kinds) if base else {},
                    options={**(base.options if base else {}), **options}, path=path)
    kinds = data.get("kinds", {})
    if not isinstance(kinds, dict):
        raise fail("'kinds' must be a table of [kinds.NAME] tables", "kinds")
    from archtool.restore.registry import list_restorers

    known = list_restorers()
    for kind, spec in kinds.items():
        table = f"kinds.{kind}"
        if kind not in KINDS:
            raise fail(f"unknown defect kind {kind!r} (known: {', '.join(KINDS)})", table)
        if not isinstance(spec, dict):
            raise fail(f"[{table}] must be a table", table)
        for k in spec:
            if k not in _KIND_KEYS:
                raise fail(f"unknown key {k!r} in [{table}] (expected one of {', '.join(sorted(_KIND_KEYS))})", table, k)
        restorer = spec.get("restorer", preset.kinds[kind].restorer if kind in preset.kinds else None)
        if restorer is None:
            raise fail(f"[{table}] needs restorer = \"NAME\" (or \"\" to leave this kind alone)", table)
        if not isinstance(restorer, str):
            raise fail("'restorer' must be a string", table, "restorer")
        if restorer == "":
            preset.kinds.pop(kind, None)
            continue
        if restorer not in known:
            raise fail(f"unknown restorer {restorer!r} (installed: {', '.join(known)})", table, "restorer")
        prev = preset.kinds.get(kind) if kind in preset.kinds and preset.kinds[kind].restorer == restorer else None
        rule = KindRule(kind=kind, restorer=restorer,
                        order=prev.order if prev else DEFAULT_ORDER.get(kind, 50.0),
                        min_severity=prev.min_severity if prev else 0.0,
                        min_confidence=prev.min_confidence if prev else 0.0,
                        always=prev.always if prev else False,
                        params=dict(prev.params) if prev else {})
        for key in ("order", "min_severity", "min_confidence"):
            if key in spec:
                v = spec[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise fail(f"'{key}' must be a number", table, key)
                if key != "order" and not 0.0 <= v <= 1.0:
                    raise fail(f"'{key}' must lie in [0, 1], got {v}", table, key)
                setattr(rule, key, float(v))
        if "always" in spec:
            if not isinstance(spec["always"], bool):
                raise fail("'always' must be true or false", table, "always")
            rule.always = spec["always"]
        params = spec.get("params", {})
        if not isinstance(params, dict):
            raise fail("'params' must be a table", table, "params")
        for pname, value in params.items():
            problem = check_rule(value)
            if problem:
                raise fail(f"parameter {pname!r}: {problem}", f"{table}.params", pname) if \
                    _line_of(text, f"{table}.params", pname) else fail(f"parameter {pname!r}: {problem}", table, "params")
            rule.params[pname] = value
        preset.kinds[kind] = rule
    return preset


def check_rule(value: Any) -> str | None:
    """Problem with a parameter rule, or None when it is valid (see plan.py for the forms)."""
    if not isinstance(value, dict):
        return None  # a literal (number, string, bool, list)
    unknown = set(value) - _RULE_KEYS
    if unknown:
        return f"unknown rule key(s) {', '.join(sorted(unknown))} (expected {', '.join(sorted(_RULE_KEYS))})"
    if "lerp" in value:
        v = value["lerp"]
        if not (isinstance(v, list) and len(v) == 2 and all(_is_num(a) for a in v)):
            return "'lerp' must be [value_at_0, value_at_1]"
        if "by" in value and value["by"] not in ("severity", "confidence"):
            return "'by' must be \"severity\" or \"confidence\""
    if "map" in value:
        pts = value["map"]
        if "measure" not in value:
            return "'map' needs 'measure' (the measure it maps)"
        if not (isinstance(pts, list) and len(pts) >= 2 and all(
                isinstance(p, list) and len(p) == 2 and all(_is_num(a) for a in p) for p in pts)):
            return "'map' must be a list of at least two [measure, value] points"
        xs = [p[0] for p in pts]
        if xs != sorted(xs):
            return "'map' points must be sorted by measure"
    if "lerp" not in value and "map" not in value and "measure" not in value:
        return "a rule needs 'lerp', 'map' or 'measure'"
    if "measure" in value and not isinstance(value["measure"], str):
        return "'measure' must be a measure name"
    for k in ("min", "max", "scale"):
        if k in value and not _is_num(value[k]):
            return f"'{k}' must be a number"
    if "if_detected" in value and not isinstance(value["if_detected"], bool):
        return "'if_detected' must be true or false"
    return None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
