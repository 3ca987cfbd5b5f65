"""Plan a restoration: Profile + preset -> ordered list of :class:`~archtool.restore.base.Step`.

``make_plan(profile, preset)`` walks the preset's kinds, keeps those the analysis detected
(with enough severity and confidence), evaluates each parameter rule against that kind's
finding, and sorts the steps by ``order`` (in ``auto``: declip, DC, rumble, decrackle, declick,
inpainting, hum, dereverb, noise, bandwidth extension).

Preset format (TOML; built-ins in ``archtool/recipes/restore/``)::

    name = "auto"                       # optional, defaults to the file's stem
    description = "..."                 # optional
    extends = "auto"                    # optional: start from a built-in preset and override it

    [options]                           # optional free-form values, kept in the plan's reasons
    max_reduction_db = 18

    [kinds.clicks]                      # one table per defect kind (names of archtool.kinds)
    restorer = "declick"                # a registered restorer; "" drops the kind (with extends)
    order = 30                          # position in the chain, lower first (default per kind)
    min_severity = 0.0                  # plan only when severity >= this (0..1)
    min_confidence = 0.3                # ... and confidence >= this (0..1)
    always = false                      # true: plan even when the kind was not detected
    [kinds.clicks.params]               # passed to the restorer's process(params=...)
    max_len_ms = 3.0                    # literal: number, string, bool or list
    threshold = { lerp = [14.0, 7.0] }  # linear in severity: 14 at 0, 7 at 1 ("by" = "confidence" too)
    max_reduction_db = { measure = "snr_db", map = [[0, 18], [30, 6]], max = 12 }
                                        # piecewise-linear in a measure (clamped at the ends)
    noise_psd = { measure = "noise_psd", default = [] }   # copy a measure (optionally * scale)

Rules accept ``min``/``max`` (clamp), ``scale`` (multiply a copied or mapped measure) and
``default`` (used when the measure is missing; without one the parameter is left out, so
the restorer estimates what it needs itself) and ``if_detected = true`` (use the default
unless the kind was detected: for an ``always`` step, or a forced one, a measure of a defect
the analysis did not find is no evidence of it). Measures are looked up in the kind's own
finding first, then in every other finding (e.g. a dereverb step may read ``snr_db``).
Neural restorers join a preset by naming their kind and restorer; no code changes here.
A bad file raises :class:`archtool.errors.RecipeError` naming the file and line.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from archtool.analyze.profile import Finding, Profile
from archtool.restore.base import Step
from archtool.restore.presets import KindRule, Preset, load_preset
from archtool.restore.registry import restorer_class

__all__ = ["make_plan", "evaluate_rule", "MISSING"]

_MISSING = object()
MISSING = _MISSING  # what evaluate_rule returns when a rule cannot be computed


# The kind whose finding a measure is read from when the step's own finding lacks it
# (e.g. denoise for surface noise reuses the noise finding's spectrum). Names measured by
# several kinds (cutoff_hz: rumble and bandlimit) fall back only to their owner.
_MEASURE_OWNER = {
    "noise_psd": "noise", "noise_psd_n_fft": "noise", "snr_db": "noise", "noise_floor_dbfs": "noise",
    "cutoff_hz": "bandlimit", "fundamental_hz": "hum", "harmonics_hz": "hum", "intervals_s": "gaps",
    "clip_level": "clipping", "clipped_fraction": "clipping", "rt60_s": "reverb", "drr_db": "reverb",
    "offset": "dc_offset",
}


def _measure(profile: Profile, finding: Finding | None, name: str) -> Any:
    if finding is not None and name in finding.measures and finding.measures[name] is not None:
        return finding.measures[name]
    owner = profile.finding(_MEASURE_OWNER[name]) if name in _MEASURE_OWNER else None
    if owner is not None and owner is not finding and owner.measures.get(name) is not None:
        return owner.measures[name]
    if name in ("dc_offset",) and profile.dc_offset is not None:
        return profile.dc_offset
    return _MISSING


def evaluate_rule(rule: Any, profile: Profile, finding: Finding | None) -> Any:
    """Value of one parameter rule for ``finding`` (``_MISSING`` sentinel when not computable)."""
    if not isinstance(rule, dict):
        return rule
    value: Any = _MISSING
    if rule.get("if_detected") and (finding is None or not finding.detected):
        pass  # a measure of a defect the analysis did not find is no evidence of it: the default
    elif "lerp" in rule:
        by = rule.get("by", "severity")
        t = float(getattr(finding, by, 0.0)) if finding is not None else 0.0
        a, b = rule["lerp"]
        value = a + (b - a) * t
    elif "map" in rule:
        m = _measure(profile, finding, rule["measure"])
        if m is not _MISSING and isinstance(m, (int, float)) and np.isfinite(m):
            xs = [p[0] for p in rule["map"]]
            ys = [p[1] for p in rule["map"]]
            value = float(np.interp(float(m), xs, ys))
    else:
        value = _measure(profile, finding, rule["measure"])
        if value is not _MISSING and "scale" in rule:
            try:
                value = (np.asarray(value, dtype=float) * float(rule["scale"])).tolist()
            except (TypeError, ValueError):
                value = _MISSING
    if value is _MISSING:
        return rule.get("default", _MISSING)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in rule:
            value = max(float(rule["min"]), value)
        if "max" in rule:
            value = min(float(rule["max"]), value)
        if isinstance(value, float) and ("lerp" in rule or "map" in rule):
            value = float(f"{value:.4g}")  # computed settings: 4 significant digits
    return value


def _reason(rule: KindRule, finding: Finding | None) -> str:
    if finding is None or not finding.detected:
        return f"{rule.kind}: always applied by the preset"
    keys = [k for k, v in finding.measures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)][:3]
    meas = ", ".join(f"{k}={finding.measures[k]:.4g}" for k in keys)
    return (f"{rule.kind}: severity {finding.severity:.2f}, confidence {finding.confidence:.2f}"
            + (f" ({meas})" if meas else ""))


def make_plan(profile: Profile, preset: str | Preset = "auto") -> list[Step]:
    """Ordered restoration steps for ``profile`` under ``preset`` (name, path or Preset).

    A kind is planned when the preset maps it to a restorer and the analysis detected it
    with ``severity >= min_severity`` and ``confidence >= min_confidence`` (or the rule says
    ``always``). When several kinds map to the same restorer (e.g. ``noise`` and
    ``surface_noise`` both to ``denoise``) one step is planned, with the parameters of the
    most severe kind. Steps are sorted by ``order``, ties by kind name. A restorer's
    ``file_measures`` (e.g. the denoiser's noise spectrum) are filled in from the analysis
    when the preset leaves them out.
    """
    p = load_preset(preset)
    chosen: dict[str, tuple[float, float, KindRule, Finding | None]] = {}
    for kind, rule in p.kinds.items():
        finding = profile.finding(kind)
        detected = bool(finding and finding.detected)
        if not rule.always:
            if not detected:
                continue
            assert finding is not None
            if finding.severity < rule.min_severity or finding.confidence < rule.min_confidence:
                continue
        sev = finding.severity if finding is not None and detected else 0.0
        prev = chosen.get(rule.restorer)
        if prev is None or sev > prev[1]:
            chosen[rule.restorer] = (min(rule.order, prev[0]) if prev else rule.order, sev, rule, finding)
        else:
            chosen[rule.restorer] = (min(rule.order, prev[0]), prev[1], prev[2], prev[3])
    steps: list[tuple[float, str, Step]] = []
    for restorer, (order, _sev, rule, finding) in chosen.items():
        params: dict[str, Any] = {}
        for name, r in rule.params.items():
            v = evaluate_rule(r, profile, finding if (finding and finding.detected) else None)
            if v is not _MISSING:
                params[name] = v
        for name in getattr(restorer_class(restorer), "file_measures", ()):
            if name not in params:  # the file's own measure, so that every chunk uses the same
                v = _measure(profile, finding, name)
                if v is not _MISSING:
                    params[name] = v
        steps.append((order, rule.kind, Step(restorer=restorer, params=params, reason=_reason(rule, finding))))
    steps.sort(key=lambda t: (t[0], t[1]))
    return [s for _, _, s in steps]
