"""78 RPM surface noise: broadband noise and crackle whose level repeats once per turn.

The envelope of each band above 1 kHz (per STFT frame, linear power, mean removed) is
autocorrelated; a disc's surface noise repeats at the rotation period, so the
normalised autocorrelation peaks at a lag of 60/78 s (searched over 70-86 RPM, i.e. speed
errors up to +-10 %) and is low at half that lag.

A scratch clicks once per revolution: ``click_periodicity`` is the share of the large
impulses (residual ratio >= ``CLICK_RATIO``) that another one follows one rotation period
later (+-3 ms, the best period over the same RPM range), less the share expected of
impulses at random times; ``click_rpm`` is that period.

Measures: ``rotation_hz`` (the best rotation rate), ``rpm``, ``periodicity``
(autocorrelation at the period minus that at half the period, 0..1), ``band_hz``,
``click_periodicity`` (0..1), ``click_rpm``.
"""
from __future__ import annotations

import math

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import BANDS_HZ, Features
from archtool.analyze.profile import Finding

RPM_RANGE = (70.0, 86.0)
THRESHOLD = 0.3
MIN_TURNS = 3.0


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    x = x - x.mean()
    n = x.size
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    X = np.fft.rfft(x, nfft)
    a = np.fft.irfft(X.real ** 2 + X.imag ** 2, nfft)[: max_lag + 1]
    # unbiased normalisation (pairs per lag), then by lag 0
    a = a / np.maximum(n - np.arange(max_lag + 1), 1)
    return a / max(a[0], 1e-30)


def analyse(f: Features) -> dict:
    fr = f.frame_rate
    best = {"periodicity": 0.0, "rotation_hz": 78.0 / 60.0, "band": None}
    if f.duration_s < MIN_TURNS * 60.0 / RPM_RANGE[0]:
        return best
    lag_lo = int(np.floor(fr * 60.0 / RPM_RANGE[1]))
    lag_hi = int(np.ceil(fr * 60.0 / RPM_RANGE[0]))
    for b, (lo, hi) in enumerate(BANDS_HZ):
        if lo < 1000 or lo >= f.sample_rate / 2:
            continue
        env = 10 ** (f.band_db[:, b] / 10.0)
        if env.size < 3 * lag_hi or not np.any(env > 0):
            continue
        env = np.log(np.maximum(env, env.max() * 1e-6))
        a = _acf(env, 2 * lag_hi + 2)
        ks = np.arange(lag_lo, lag_hi + 1)
        dbl = np.where(2 * ks < a.size, a[np.minimum(2 * ks, a.size - 1)], 0.0)
        k = int(ks[np.argmax(a[ks] + 0.5 * dbl - np.maximum(a[ks // 2], 0.0))])
        half = a[max(1, k // 2)] if k // 2 >= 1 else 0.0
        per = float(a[k] - max(half, 0.0))
        if per > best["periodicity"]:
            best = {"periodicity": per, "rotation_hz": fr / k, "band": (lo, min(hi, f.sample_rate / 2))}
    return best


CLICK_RATIO = 15.0
CLICK_TOL_S = 0.003
MAX_EVENTS = 400


def click_period(f: Features) -> tuple[float, float]:
    """``(share, period_s)``: how many large impulses recur one rotation later."""
    from archtool.analyze.clicks import genuine_events

    t = np.sort(f.click_times_s[(f.click_ratio >= CLICK_RATIO) & genuine_events(f)])
    if t.size < 4:
        return 0.0, 0.0
    if t.size > MAX_EVENTS:  # the largest events only (bounded pairwise cost)
        keep = np.argsort(f.click_ratio[(f.click_ratio >= CLICK_RATIO) & genuine_events(f)])[-MAX_EVENTS:]
        t = np.sort(f.click_times_s[(f.click_ratio >= CLICK_RATIO) & genuine_events(f)][keep])
    lo, hi = 60.0 / RPM_RANGE[1], 60.0 / RPM_RANGE[0]
    d = t[None, :] - t[:, None]
    cand = d[(d >= lo - CLICK_TOL_S) & (d <= hi + CLICK_TOL_S)]
    if cand.size == 0:
        return 0.0, 0.0
    grid = np.arange(lo, hi + 1e-9, 0.001)
    # events at random times would find a neighbour within +-tol this often
    chance = 1.0 - math.exp(-(t.size / max(t[-1] - t[0], 1e-3)) * 2 * CLICK_TOL_S)
    # events with a successor one period later, per candidate period
    best, best_p = 0.0, 0.0
    for p in grid[np.abs(grid[:, None] - cand[None, :]).min(axis=1) <= CLICK_TOL_S]:
        has = np.any(np.abs(d - p) <= CLICK_TOL_S, axis=1)
        # only events that could have a successor inside the file count
        room = t <= t[-1] - p + CLICK_TOL_S
        share = float(np.count_nonzero(has & room) / max(np.count_nonzero(room), 1)) - chance
        if share > best:
            best, best_p = share, float(p)
    return best, best_p


def detect(f: Features) -> Finding:
    a = analyse(f)
    cshare, cperiod = click_period(f)
    per = a["periodicity"]
    detected = per >= THRESHOLD
    sev = ramp(per, THRESHOLD, 0.8)
    conf = margin_confidence(per, THRESHOLD, 0.1)
    return Finding("surface_noise", bool(detected), sev, conf, {
        "rotation_hz": r(a["rotation_hz"], 4), "rpm": r(a["rotation_hz"] * 60.0, 2),
        "periodicity": r(per, 3), "band_hz": list(a["band"]) if a["band"] else None,
        "click_periodicity": r(cshare, 3), "click_rpm": r(60.0 / cperiod, 2) if cperiod else None,
    })
