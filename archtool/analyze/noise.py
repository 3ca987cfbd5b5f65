"""Broadband noise: noise floor, its power spectrum, and the estimated SNR.

The noise spectrum is estimated in two steps. Per bin, a low percentile of the
time-smoothed frame power (minimum statistics, bias-corrected on Gaussian noise) bounds
the noise from above; it overestimates noise wherever music or speech never pauses. Then a
smooth coloured-noise model (a power law, slope -6..+3 dB/octave) is fitted as the lower
envelope of that estimate over the effective band, and the noise spectrum is the smaller
of the two. SNR = (total power - noise power) / noise power, both as mean squares.

Measures: ``snr_db``; ``noise_floor_dbfs`` (noise mean square, dB re full scale);
``noise_psd`` (expected ``|rfft(hann * x)|^2`` per bin of an ``n_fft``-point frame, periodic
Hann from ``scipy.signal.get_window("hann", n_fft)``, unnormalised numpy rfft);
``noise_psd_n_fft``; ``noise_slope_db_per_octave`` (colour: 0 white, -3 pink, -6 brown).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import db, margin_confidence, r, ramp
from archtool.analyze.features import Features, _spectrum_to_ms
from archtool.analyze.profile import Finding

SNR_THRESHOLD_DB = 30.0
SLOPES = np.arange(-6.0, 3.01, 0.5)


def noise_model(f: Features, top_hz: float | None = None) -> tuple[np.ndarray, float]:
    """Noise power per bin (same scale as ``f.noise_psd``) and the fitted slope (dB/octave)."""
    est = np.asarray(f.noise_psd, dtype=np.float64)
    fr = f.freqs
    top = min(0.45 * f.sample_rate, 20000.0, top_hz or np.inf)
    sel = (fr >= 100.0) & (fr <= top)
    if np.count_nonzero(sel) < 8 or not np.any(est > 0):
        return est, 0.0
    lf = np.log2(fr[sel] / 1000.0)
    ed = db(est[sel] + 1e-30)
    best = (-1.0, 0.0, 0.0)
    for s in SLOPES:
        res = ed - s * lf
        off = np.percentile(res, 3)
        contact = float(np.mean(res - off < 3.0))
        if contact > best[0]:
            best = (contact, float(s), float(off))
    _, slope, off = best
    line = off + slope * np.log2(np.maximum(fr, fr[1]) / 1000.0)
    return np.minimum(10.0 ** (line / 10.0), est), slope


def estimate(f: Features, top_hz: float | None = None) -> dict:
    """SNR and noise floor numbers (used by the noise finding and by other detectors)."""
    psd, slope = noise_model(f, top_hz)
    pn = _spectrum_to_ms(psd, f.n_fft)
    pt = f.mono_mean_square
    if pn <= 0:
        snr = float("inf") if pt > 0 else 0.0
    else:
        snr = float(db(max(pt - pn, pn * 1e-6)) - db(pn))
    return {"snr_db": snr, "noise_floor_dbfs": float(db(pn)) if pn > 0 else -200.0,
            "noise_psd": psd, "slope": slope}


def detect(f: Features, top_hz: float | None = None) -> Finding:
    e = estimate(f, top_hz)
    snr = e["snr_db"]
    audible = e["noise_floor_dbfs"] > -75.0
    detected = bool(snr < SNR_THRESHOLD_DB and audible)
    sev = ramp(snr, SNR_THRESHOLD_DB + 5.0, 0.0)
    conf = margin_confidence(snr, SNR_THRESHOLD_DB, 5.0)
    return Finding("noise", detected, sev, conf, {
        "snr_db": r(snr, 2), "noise_floor_dbfs": r(e["noise_floor_dbfs"], 2),
        "noise_psd": [float(f"{v:.4g}") for v in np.asarray(e["noise_psd"], dtype=np.float64)],
        "noise_psd_n_fft": int(f.n_fft), "noise_slope_db_per_octave": r(e["slope"], 2),
    })
