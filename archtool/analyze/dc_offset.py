"""DC offset: the mean of each channel.

Measures: ``offset`` (per channel, full-scale units), ``offset_db`` (largest |offset|, dBFS).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

THRESHOLD = 0.003  # -50 dBFS


def detect(f: Features) -> Finding:
    off = np.asarray(f.mean, dtype=np.float64)
    worst = float(np.max(np.abs(off))) if off.size else 0.0
    detected = worst >= THRESHOLD
    sev = ramp(np.log10(max(worst, 1e-9)), np.log10(THRESHOLD), np.log10(0.1))
    conf = margin_confidence(np.log10(max(worst, 1e-9)), np.log10(THRESHOLD), 0.3)
    return Finding("dc_offset", bool(detected), sev, conf, {
        "offset": [r(v, 6) for v in off],
        "offset_db": r(20 * np.log10(max(worst, 1e-12)), 2),
    })
