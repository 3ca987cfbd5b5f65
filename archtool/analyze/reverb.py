"""Reverberation: blind decay-rate (RT60) and direct-to-reverberant ratio estimates.

On the 5 ms envelope (dB), every strong onset followed by a free decay (a fall of at least
``FIT_RANGE_DB`` before the level rises again or reaches the noise floor) gives a decay
slope, fitted by least squares between -5 and -5-``FIT_RANGE_DB`` dB below the peak. A
room cannot decay faster than its reverberation, so the RT60 estimate is a low percentile
of the per-decay times (the fastest decays). The DRR estimate is the median, over decays,
of the peak level minus the late decay line extrapolated back to the peak time (the part of
the peak that the reverberant tail does not explain); it is a blind proxy, not a measured DRR.

Measures: ``rt60_s``, ``drr_db``, ``decays`` (how many decays were fitted).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

FIT_RANGE_DB = 15.0
RT60_THRESHOLD_S = 0.45
MIN_DECAYS = 4
PERCENTILE = 20.0


def decays(f: Features, noise_floor_dbfs: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-decay RT60 (s) and DRR proxy (dB)."""
    env = uniform_filter1d(f.env_db, size=3, mode="nearest")
    hop = f.env_hop_s
    n = env.size
    if n < 20:
        return np.zeros(0), np.zeros(0)
    floor = noise_floor_dbfs + 6.0
    look = int(round(0.05 / hop))
    rts, drrs = [], []
    i = look
    max_len = int(round(2.5 / hop))
    while i < n - 4:
        # a local peak: highest point within +-50 ms, well above the floor
        lo, hi = max(0, i - look), min(n, i + look + 1)
        if env[i] < env[lo:hi].max() or env[i] < floor + FIT_RANGE_DB + 10.0:
            i += 1
            continue
        peak = env[i]
        j = i + 1
        run_min = peak
        end = min(n, i + max_len)
        while j < end:
            run_min = min(run_min, env[j])
            if env[j] > run_min + 3.0 or env[j] < floor:
                break
            j += 1
        seg = env[i:j]
        sel = np.flatnonzero((seg <= peak - 5.0) & (seg >= peak - 5.0 - FIT_RANGE_DB))
        if seg.min(initial=peak) <= peak - 5.0 - FIT_RANGE_DB and sel.size >= 3:
            t = sel * hop
            slope, icpt = np.polyfit(t, seg[sel], 1)
            if slope < -1.0:
                rts.append(-60.0 / slope)
                drrs.append(peak - icpt)
        i = max(j, i + 1)
    return np.asarray(rts), np.asarray(drrs)


def detect(f: Features, noise_floor_dbfs: float) -> Finding:
    rts, drrs = decays(f, noise_floor_dbfs)
    if rts.size >= MIN_DECAYS:
        rt60 = float(np.percentile(rts, PERCENTILE))
        drr = float(np.median(drrs))
    else:
        rt60, drr = float("nan"), float("nan")
    detected = bool(rts.size >= MIN_DECAYS and rt60 >= RT60_THRESHOLD_S)
    sev = ramp(rt60, RT60_THRESHOLD_S, 2.0)
    conf = margin_confidence(rt60, RT60_THRESHOLD_S, 0.15) * min(1.0, rts.size / 10.0) if rts.size else 0.3
    return Finding("reverb", detected, sev, conf, {
        "rt60_s": r(rt60, 3), "drr_db": r(drr, 2), "decays": int(rts.size),
    })
