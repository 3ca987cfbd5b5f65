"""Clipping, hard or soft, set by the fraction of samples it affects."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_CLIP, Param, register_unit


def clip_threshold(audio: np.ndarray, fraction: float) -> float:
    """The level exceeded by ``fraction`` of all samples (|x|), over all channels."""
    mag = np.sort(np.abs(audio).reshape(-1))
    k = int(round(fraction * mag.size))
    if k <= 0:
        return float(mag[-1]) if mag.size else 0.0
    return float(mag[mag.size - k])


@register_unit("clipping", "clipping", {
    "fraction": Param(float, 0.01, "fraction of samples driven into the clipper", 0.0001, 0.3),
    "mode": Param(str, "hard", "hard: flat at the threshold; soft: tanh knee saturating 20 % above it",
                  choices=("hard", "soft")),
}, stage=STAGE_CLIP)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Clip at the level exceeded by ``fraction`` of samples.

    Labels ``clipped_fraction`` measured on the output (hard: samples at the rail |y| >= threshold;
    soft: samples above the knee) and ``threshold``. Severity:
    log10(fraction / 0.0005) / log10(0.2 / 0.0005), in 0..1.
    """
    x = audio.astype(np.float64)
    thr = clip_threshold(x, params["fraction"])
    if thr <= 0:
        return audio.copy(), {"severity": 0.0, "clipped_fraction": 0.0, "threshold": 0.0}
    if params["mode"] == "hard":
        y = np.clip(x, -thr, thr)
        clipped = np.abs(y) >= thr
    else:
        ceiling = 1.2 * thr
        mag = np.abs(x)
        over = mag > thr
        y = x.copy()
        y[over] = np.sign(x[over]) * (thr + (ceiling - thr) * np.tanh((mag[over] - thr) / (ceiling - thr)))
        clipped = over
    y = y.astype(np.float32)
    frac = float(np.mean(clipped))
    sev = float(np.clip(np.log10(max(frac, 1e-9) / 0.0005) / np.log10(0.2 / 0.0005), 0.0, 1.0))
    return y, {"severity": sev, "clipped_fraction": frac, "threshold": float(np.float32(thr))}
