"""Gaps and dropouts: waveform segments set exactly to zero."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_GAPS, Param, register_unit


def mask_to_intervals(mask: np.ndarray, sample_rate: int) -> list[list[float]]:
    """Runs of True in a boolean sample mask as [[start_s, end_s), ...] (end exclusive)."""
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [[float(a) / sample_rate, float(b) / sample_rate] for a, b in zip(edges[::2], edges[1::2])]


def gap_severity(fraction: float) -> float:
    """sqrt(zeroed fraction / 0.2), capped at 1."""
    return float(min(1.0, np.sqrt(max(fraction, 0.0) / 0.2)))


@register_unit("gaps", "gaps", {
    "count": Param(int, 3, "number of dropouts (overlapping ones merge)", 0, 200),
    "min_ms": Param(float, 5.0, "shortest dropout (ms)", 0.1, 5000.0),
    "max_ms": Param(float, 100.0, "longest dropout (ms)", 0.1, 5000.0),
}, stage=STAGE_GAPS)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Zero ``count`` segments of uniform random length and position, in all channels.

    Labels ``gap_intervals_s`` (sample-exact, end exclusive). Severity: gap_severity.
    """
    c, n = audio.shape
    lo, hi = sorted((params["min_ms"], params["max_ms"]))
    mask = np.zeros(n, dtype=bool)
    for _ in range(params["count"]):
        length = max(1, int(round(rng.uniform(lo, hi) * sample_rate / 1000)))
        length = min(length, n)
        start = int(rng.integers(0, n - length + 1))
        mask[start:start + length] = True
    out = audio.copy()
    out[:, mask] = 0.0
    frac = float(mask.mean()) if n else 0.0
    return out, {"severity": gap_severity(frac), "gap_intervals_s": mask_to_intervals(mask, sample_rate),
                 "gap_fraction": frac}
