"""Wow and flutter: a periodic drift of pitch shared by all partials.

Features hold, per STFT frame, the pitch change from the previous frame (cents): the
magnitude-weighted mean ratio of phase-vocoder instantaneous frequencies of the spectral
peaks at 150-4000 Hz. Frames with at least a few partials are integrated into a
pitch-deviation track; speed drift shows as a strong periodic component at 0.3-6 Hz (wow) or 6-15 Hz
(flutter) in that track, where intonation and note changes are irregular.

Measures: ``rate_hz`` (strongest modulation rate), ``depth_cents`` (peak deviation of that
component), ``depth_percent``, ``periodicity`` (share of track variance at that rate, 0..1).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

MIN_CORR = 0.4
RATE_RANGE_HZ = (0.3, 15.0)
PERIODICITY = 0.35
MIN_DEPTH_CENTS = 4.0


def analyse(f: Features) -> dict:
    s = np.where(f.wow_corr >= MIN_CORR, f.wow_shift_cents, 0.0)
    # clamp isolated jumps (note changes) so they do not dominate the track
    s = np.clip(s, -5.0, 5.0)
    n = s.size
    out = {"rate": 0.0, "depth": 0.0, "periodicity": 0.0, "usable": float(np.mean(f.wow_corr >= MIN_CORR)) if n else 0.0}
    if n < 32:
        return out
    track = np.cumsum(s)
    t = np.arange(n)
    track = track - np.polyval(np.polyfit(t, track, 2), t)
    w = np.hanning(n)
    nfft = 1 << int(np.ceil(np.log2(4 * n)))
    spec = np.abs(np.fft.rfft(track * w, nfft)) ** 2
    fq = np.fft.rfftfreq(nfft, 1.0 / f.frame_rate)
    band = (fq >= RATE_RANGE_HZ[0]) & (fq <= RATE_RANGE_HZ[1])
    if not band.any() or spec[band].sum() <= 0:
        return out
    k = np.flatnonzero(band)[np.argmax(spec[band])]
    df = fq[1] - fq[0]
    width = max(1, int(round(0.15 / df)))
    peak_power = spec[max(k - width, 0): k + width + 1].sum()
    total = spec[(fq >= 0.1)].sum() + 1e-30
    amp = 2.0 * np.sqrt(spec[k]) / np.sum(w)  # sinusoid amplitude from a Hann-windowed peak
    out.update(rate=float(fq[k]), depth=float(amp), periodicity=float(peak_power / total))
    return out


def detect(f: Features) -> Finding:
    a = analyse(f)
    detected = a["periodicity"] >= PERIODICITY and a["depth"] >= MIN_DEPTH_CENTS and a["usable"] >= 0.3
    sev = ramp(a["depth"], MIN_DEPTH_CENTS, 50.0)
    conf = margin_confidence(a["periodicity"], PERIODICITY, 0.1) * (0.5 + 0.5 * min(1.0, a["usable"] / 0.5))
    return Finding("wow", bool(detected), sev, conf, {
        "rate_hz": r(a["rate"], 3), "depth_cents": r(a["depth"], 2),
        "depth_percent": r((2 ** (a["depth"] / 1200.0) - 1.0) * 100.0, 3),
        "periodicity": r(a["periodicity"], 3), "usable_fraction": r(a["usable"], 3),
    })
