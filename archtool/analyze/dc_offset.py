"""DC offset: the mean of each channel.

Detected when the largest |offset| is >= ``THRESHOLD`` and stands ``MIN_DC_SNR_DB`` above the
wander that low-frequency noise (rumble) gives the mean of a clip of this length.

Measures: ``offset`` (per channel, full-scale units), ``offset_db`` (largest |offset|, dBFS),
``offset_to_wander_db``.
"""
from __future__ import annotations

import math

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

THRESHOLD = 0.003  # -50 dBFS
MIN_DC_SNR_DB = 6.0


def detect(f: Features) -> Finding:
    off = np.asarray(f.mean, dtype=np.float64)
    worst = float(np.max(np.abs(off))) if off.size else 0.0
    # how far the mean stands above what low-frequency noise (1-8 Hz) makes the mean of a
    # clip of this length wander by: var(mean) ~ S(0) / T
    fr = f.low_freqs
    sel = (fr >= 1.0) & (fr < 8.0)
    s0 = float(np.mean(f.low_psd[sel])) if sel.any() else 0.0
    wander = math.sqrt(max(s0, 1e-30) / max(f.duration_s, 1e-3))
    dc_snr = 20 * math.log10(max(worst, 1e-12) / wander)
    detected = worst >= THRESHOLD and dc_snr >= MIN_DC_SNR_DB
    sev = ramp(np.log10(max(worst, 1e-9)), np.log10(THRESHOLD), np.log10(0.1))
    conf = margin_confidence(np.log10(max(worst, 1e-9)), np.log10(THRESHOLD), 0.3)
    return Finding("dc_offset", bool(detected), sev, conf, {
        "offset": [r(v, 6) for v in off],
        "offset_db": r(20 * np.log10(max(worst, 1e-12)), 2), "offset_to_wander_db": r(dc_snr, 2),
    })
