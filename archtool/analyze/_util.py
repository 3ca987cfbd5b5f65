"""Small helpers shared by the detectors (no I/O)."""
from __future__ import annotations

import math

import numpy as np


def ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi``, linear between, clamped (``lo`` may exceed ``hi``)."""
    if not math.isfinite(x):
        return 0.0
    if hi == lo:
        return float(x >= hi)
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def db(x: float | np.ndarray, floor: float = 1e-20):
    """10 log10 of a power, floored."""
    return 10.0 * np.log10(np.maximum(x, floor))


def margin_confidence(value: float, threshold: float, scale: float) -> float:
    """Confidence of a threshold decision: 0.5 at the threshold, towards 1 ``scale`` away."""
    if not math.isfinite(value):
        return 0.5
    return float(0.5 + 0.5 * math.tanh(abs(value - threshold) / max(scale, 1e-9)))


def r(x: float, nd: int = 3) -> float | None:
    """Round for the JSON measures; non-finite becomes None."""
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), nd)
