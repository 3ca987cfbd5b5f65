"""Hum and buzz: a stationary fundamental (50/60 Hz or elsewhere) with its harmonics.

Works on the averaged high-resolution periodogram of the decimated mix (about 0.03 Hz
bins, up to ~420 Hz). The prominence of each bin over a +-3 Hz running median shows
narrow lines; candidate fundamentals 45-65 Hz are scored by the summed
prominence at their harmonics, and a harmonic counts as a hum line only if it also stands
out in >= 80 % of ~1 s segments (music and speech lines come and go; mains hum stays). A hum at an off-mains frequency (not within 0.4 % of
50 or 60 Hz) is reported as a likely transfer-speed error.

Measures: ``fundamental_hz``, ``harmonics_hz`` (those standing out by >= ``LINE_DB``),
``level_db`` (hum power re the total signal power, dB), ``level_dbfs``,
``mains_hz`` (nearest of 50/60), ``speed_error_percent`` ((f0/mains - 1) x 100),
``off_mains`` (bool), ``prominence_db`` (of the strongest line).
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, median_filter

from archtool.analyze._util import db, margin_confidence, r, ramp
from archtool.analyze.features import HUM_SEG, Features
from archtool.analyze.profile import Finding

F0_RANGE = (45.0, 65.0)
STATIONARY = 0.8
SHORT_LINE_DB = 25.0
MAX_HARMONIC_HZ = 400.0
LINE_DB = 10.0
DETECT_SCORE_DB = 24.0
MIN_LEVEL_DB = -55.0
MAINS = (50.0, 60.0)
OFF_MAINS_TOLERANCE = 0.004


def _prominence(f: Features) -> tuple[np.ndarray, np.ndarray, float]:
    fr = f.low_freqs
    df = fr[1] - fr[0]
    L = db(f.low_psd + 1e-30)
    base = median_filter(L, size=int(round(6.0 / df)) | 1, mode="nearest")
    return fr, L - base, df


def stationarity(f: Features, freq_hz: float) -> float | None:
    """Fraction of ~1 s segments in which ``freq_hz`` (or a neighbouring ~1 Hz bin) stands
    >= 6 dB over its neighbourhood."""
    if f.hum_seg_count < 2:
        return None
    seg_df = f.low_rate / HUM_SEG
    k = int(round(freq_hz / seg_df))
    if k + 2 > f.hum_seg_line_count.size:
        return None
    return float(f.hum_seg_line_count[k] / f.hum_seg_count)


def analyse(f: Features) -> dict:
    fr, P, df = _prominence(f)
    top = min(MAX_HARMONIC_HZ, 0.42 * f.low_rate)
    Pm = maximum_filter1d(P, size=2 * int(round(0.12 / df)) + 1)
    f0s = np.arange(F0_RANGE[0], F0_RANGE[1], df / 2)
    H = int(top // F0_RANGE[0])
    hs = np.arange(1, H + 1)
    idx = np.rint(np.outer(f0s, hs) / df).astype(int)
    valid = np.outer(f0s, hs) <= top
    vals = np.where(valid, np.clip(Pm[np.clip(idx, 0, P.size - 1)], 0.0, 40.0), 0.0)
    if f.hum_seg_count >= 2:
        seg_df = f.low_rate / HUM_SEG
        frac = f.hum_seg_line_count / f.hum_seg_count
        kk = np.clip(np.rint(np.outer(f0s, hs) / seg_df).astype(int), 0, frac.size - 1)
        vals = np.where(frac[kk] >= STATIONARY, vals, 0.0)
    else:
        vals = np.where(vals >= SHORT_LINE_DB, vals, 0.0)
    # a hum needs lines at most of its low harmonics: score = sum of the 3 strongest lines
    top3 = -np.sort(-vals, axis=1)[:, :3].sum(axis=1)
    i = int(np.argmax(top3))
    # refine f0 by the strongest harmonic's exact peak position
    h_best = int(np.argmax(vals[i])) + 1
    centre = int(round(f0s[i] * h_best / df))
    lo, hi = max(centre - 6, 0), min(centre + 7, P.size)
    kpk = lo + int(np.argmax(P[lo:hi]))
    f0 = fr[kpk] / h_best
    lines, stat = [], []
    for h, v in zip(hs, vals[i]):
        hf = float(h * f0)
        if v < LINE_DB or hf > top:
            continue
        st = stationarity(f, hf)
        if (st is not None and st >= STATIONARY) or (st is None and v >= SHORT_LINE_DB):
            lines.append(hf)
            stat.append(1.0 if st is None else st)
    # line power: power within +-0.25 Hz of each line above the running median
    excess = 0.0
    w = int(round(0.25 / df))
    lin = f.low_psd
    base_lin = 10 ** ((db(lin + 1e-30) - P) / 10)
    for hf in lines:
        k = int(round(hf / df))
        seg = slice(max(k - w, 0), k + w + 1)
        excess += float(np.sum(np.maximum(lin[seg] - base_lin[seg], 0.0)) * df)
    total = max(f.mono_mean_square, 1e-30)
    mains = min(MAINS, key=lambda m: abs(f0 / m - 1))
    return {
        "score": float(top3[i]), "f0": float(f0), "harmonics": lines, "stationarity": stat,
        "prominence": float(vals[i].max()), "level_db": float(db(excess) - db(total)) if excess > 0 else -120.0,
        "level_dbfs": float(db(excess)) if excess > 0 else -200.0, "mains": mains,
        "speed_error": (f0 / mains - 1.0) * 100.0,
    }


def detect(f: Features) -> Finding:
    a = analyse(f)
    detected = len(a["harmonics"]) >= 1 and a["level_db"] >= MIN_LEVEL_DB
    off = abs(a["speed_error"]) > OFF_MAINS_TOLERANCE * 100
    sev = ramp(a["level_db"], -50.0, -10.0)
    conf = margin_confidence(len(a["harmonics"]) + (a["level_db"] - MIN_LEVEL_DB) / 20.0, 0.5, 1.0)
    return Finding("hum", bool(detected), sev, conf, {
        "fundamental_hz": r(a["f0"], 3), "harmonics_hz": [r(h, 2) for h in a["harmonics"]],
        "level_db": r(a["level_db"], 2), "level_dbfs": r(a["level_dbfs"], 2),
        "mains_hz": a["mains"], "speed_error_percent": r(a["speed_error"], 3),
        "off_mains": bool(detected and off), "prominence_db": r(a["prominence"], 2),
        "score_db": r(a["score"], 2),
    })
