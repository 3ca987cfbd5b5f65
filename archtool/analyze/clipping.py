"""Clipping: samples stuck at the extreme level in flat-topped runs, or a soft-clipped
amplitude distribution piling up just below the peak.

Measures: ``clipped_fraction`` (samples in flat runs of >= 2 at the channel's
positive or negative extreme, over all samples), ``clip_level`` (largest |peak|),
``flat_runs`` (count), ``near_peak_fraction`` (samples with |x| >= 0.95 x peak).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

HARD_FRACTION = 2e-4
MIN_RUNS = 3
SOFT_NEAR_PEAK = 0.01


def detect(f: Features) -> Finding:
    total = max(f.n_samples * f.channels, 1)
    counts = int(np.sum(f.clip_counts))
    runs = int(np.sum(f.clip_runs))
    frac = counts / total
    near = float(np.sum(f.near_peak)) / total
    level = float(np.max(np.maximum(np.abs(f.peak_pos), np.abs(f.peak_neg)))) if f.channels else 0.0
    hard = frac >= HARD_FRACTION and runs >= MIN_RUNS
    soft = near >= SOFT_NEAR_PEAK
    detected = bool((hard or soft) and level > 0)
    sev = max(ramp(np.log10(max(frac, 1e-9)), np.log10(HARD_FRACTION), -1.0) if hard else 0.0,
              ramp(near, SOFT_NEAR_PEAK, 0.1) if soft else 0.0)
    conf = max(margin_confidence(np.log10(max(frac, 1e-9)), np.log10(HARD_FRACTION), 0.4),
               margin_confidence(near, SOFT_NEAR_PEAK, 0.005)) if detected else \
        min(margin_confidence(np.log10(max(frac, 1e-9)), np.log10(HARD_FRACTION), 0.4),
            margin_confidence(near, SOFT_NEAR_PEAK, 0.005))
    return Finding("clipping", detected, sev, conf, {
        "clipped_fraction": r(frac, 6), "clip_level": r(level, 5), "flat_runs": runs,
        "near_peak_fraction": r(near, 5), "kind": "hard" if hard else ("soft" if soft else "none"),
    })
