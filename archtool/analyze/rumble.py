"""Rumble: low-frequency noise below ~40 Hz (turntable bearings, handling, wind).

From the high-resolution low-band periodogram (hum lines excluded by a running median):
``level_db`` = power in 5-35 Hz re the total signal power, and ``cutoff_hz``, the
frequency where the smoothed low-band spectrum falls 10 dB below its 5-20 Hz level
(a suggested high-pass corner).

Detected when that level is above ``THRESHOLD_DB`` and the 5-35 Hz spectral density
exceeds the 100-300 Hz density by ``LF_MID_DB`` (broadband noise and crackle are flat
there; programme material falls towards low frequencies).

Measures: ``level_db``, ``cutoff_hz``, ``level_dbfs``, ``lf_to_mid_db``.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from archtool.analyze._util import db, margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

BAND_HZ = (5.0, 35.0)
THRESHOLD_DB = -30.0
LF_MID_DB = -6.0  # rumble: 5-35 Hz density not far below the 100-300 Hz density


def detect(f: Features) -> Finding:
    fr = f.low_freqs
    df = fr[1] - fr[0]
    smooth = median_filter(f.low_psd, size=int(round(2.0 / df)) | 1, mode="nearest")
    band = (fr >= BAND_HZ[0]) & (fr < BAND_HZ[1])
    p_band = float(np.sum(smooth[band]) * df)
    total = max(f.mono_mean_square, 1e-30)
    level = float(db(p_band) - db(total)) if p_band > 0 else -120.0
    ref = db(np.mean(smooth[(fr >= 5) & (fr < 20)]) + 1e-30)
    sm_db = db(smooth + 1e-30)
    above = np.flatnonzero((fr >= 20) & (fr <= 200) & (sm_db < ref - 10.0))
    cutoff = float(fr[above[0]]) if above.size else 200.0
    mid = (fr >= 100.0) & (fr < 300.0)
    lf_mid = float(db(np.mean(smooth[band]) + 1e-30) - db(np.mean(smooth[mid]) + 1e-30))
    detected = level >= THRESHOLD_DB and lf_mid >= LF_MID_DB
    sev = ramp(level, THRESHOLD_DB, 0.0)
    conf = margin_confidence(level, THRESHOLD_DB, 5.0)
    return Finding("rumble", bool(detected), sev, conf, {
        "level_db": r(level, 2), "cutoff_hz": r(cutoff, 1), "level_dbfs": r(db(p_band) if p_band > 0 else -200.0, 2),
        "lf_to_mid_db": r(lf_mid, 2),
    })
