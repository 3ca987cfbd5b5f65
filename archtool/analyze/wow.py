"""Wow and flutter: a periodic drift of pitch shared by all partials.

Features hold, per frame of a ~0.25 s pitch-tracking STFT at ~8 kHz (hop ~60 ms), the
weighted median change of the instantaneous frequency of the stable spectral peaks
(100-3400 Hz) over ``WOW_LAGS`` frames, in cents. A speed drift scales every partial by the
same ratio, so it survives the median; note changes and noise peaks do not. Wow shows
as a line at 0.25-3 Hz in the spectrum of that drift track (flutter at 4-8 Hz), well
above the track's median level; intonation, vibrato on single notes and measurement noise
spread over all rates.

Measures: ``rate_hz`` (strongest wow rate), ``depth_cents`` (peak pitch deviation of that
component), ``depth_percent``, ``peak_db`` (that line over the track spectrum's median,
dB), ``periodicity`` (share of the track's variance within +-0.15 Hz of the line, 0..1),
``drift_cents`` (median absolute pitch change over the longest lag), ``usable_fraction``
(frames with at least two partials), ``flutter_rate_hz`` and ``flutter_peak_db``.

A second, click-robust measure (:mod:`archtool.analyze.wow_fm`) fits one sinusoid jointly to
every partial track (each with its own pitch): ``fm_fraction`` (share of the tracks' pitch
variance it explains), ``fm_relative`` (that share over its median across rates),
``fm_rate_hz`` and ``fm_depth_cents``. It informs the learned decision layer; the rule's
verdict rests on the drift line alone.
"""
from __future__ import annotations

import math

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import WOW_LAGS, Features
from archtool.analyze.profile import Finding
from archtool.analyze.wow_fm import fm_measures

WOW_RANGE_HZ = (0.25, 3.0)
FLUTTER_RANGE_HZ = (4.0, 8.0)
PEAK_DB = 10.0
MIN_DEPTH_CENTS = 2.0
MIN_USABLE = 0.5
MIN_FRAMES = 32


def line(d: np.ndarray, rate: float, lo: float, hi: float) -> dict:
    """Strongest spectral line of the drift track ``d`` (NaN = no measure) within
    ``lo..hi`` Hz: its rate, amplitude (track units), height over the median of the track
    spectrum (dB) and share of the track variance near it."""
    ok = np.isfinite(d)
    out = {"rate": 0.0, "amp": 0.0, "peak_db": 0.0, "share": 0.0}
    if ok.sum() < MIN_FRAMES or hi <= lo:
        return out
    v = np.where(ok, d, 0.0)
    mad = float(np.median(np.abs(v[ok]))) + 1e-3
    v = np.clip(v, -4 * mad, 4 * mad)
    v = np.where(ok, v - v[ok].mean(), 0.0)
    n = v.size
    w = np.hanning(n)
    nfft = 1 << int(np.ceil(np.log2(8 * n)))
    sp = np.abs(np.fft.rfft(v * w, nfft)) ** 2
    fq = np.fft.rfftfreq(nfft, 1.0 / rate)
    band = (fq >= lo) & (fq <= min(hi, 0.45 * rate))
    ref = (fq >= 0.2) & (fq <= 0.45 * rate)
    if not band.any() or sp[ref].sum() <= 0:
        return out
    k = np.flatnonzero(band)[np.argmax(sp[band])]
    df = fq[1] - fq[0]
    width = max(1, int(round(0.15 / df)))
    share = float(sp[max(k - width, 0): k + width + 1].sum() / sp[ref].sum())
    amp = 2.0 * math.sqrt(sp[k]) / (np.sum(w) * max(ok.mean(), 1e-3))
    peak_db = 10 * math.log10(sp[k] / (np.median(sp[ref]) + 1e-30) + 1e-30)
    return {"rate": float(fq[k]), "amp": float(amp), "peak_db": float(peak_db), "share": share}


def analyse(f: Features) -> dict:
    d = f.wow_drift_cents
    rate = f.wow_rate
    if d.shape[0] == 0:
        return {"rate": 0.0, "depth": 0.0, "peak_db": 0.0, "share": 0.0, "usable": 0.0, "drift": 0.0,
                "flutter_rate": 0.0, "flutter_peak_db": 0.0}
    short, longest = d[:, 0], d[:, -1]
    wl = line(short, rate, *WOW_RANGE_HZ)
    fl = line(short, rate, *FLUTTER_RANGE_HZ)
    lag = WOW_LAGS[0]
    gain = 2.0 * abs(math.sin(math.pi * wl["rate"] * lag / rate)) if wl["rate"] > 0 else 1.0
    depth = wl["amp"] / max(gain, 1e-3)
    fin = longest[np.isfinite(longest)]
    return {"rate": wl["rate"], "depth": float(depth), "peak_db": wl["peak_db"], "share": wl["share"],
            "usable": float(np.mean(np.isfinite(short))),
            "drift": float(np.median(np.abs(fin))) if fin.size else 0.0,
            "flutter_rate": fl["rate"], "flutter_peak_db": fl["peak_db"]}


def detect(f: Features) -> Finding:
    a = analyse(f)
    fm = fm_measures(f.wow_fm)
    detected = a["peak_db"] >= PEAK_DB and a["depth"] >= MIN_DEPTH_CENTS and a["usable"] >= MIN_USABLE
    sev = ramp(a["depth"], MIN_DEPTH_CENTS, 30.0)
    conf = margin_confidence(a["peak_db"], PEAK_DB, 4.0) * (0.5 + 0.5 * min(1.0, a["usable"] / 0.8))
    return Finding("wow", bool(detected), sev, conf, {
        "rate_hz": r(a["rate"], 3), "depth_cents": r(a["depth"], 2),
        "depth_percent": r((2 ** (a["depth"] / 1200.0) - 1.0) * 100.0, 3),
        "peak_db": r(a["peak_db"], 2), "periodicity": r(a["share"], 3),
        "drift_cents": r(a["drift"], 3), "usable_fraction": r(a["usable"], 3),
        "flutter_rate_hz": r(a["flutter_rate"], 3), "flutter_peak_db": r(a["flutter_peak_db"], 2),
        "fm_fraction": r(fm["fraction"], 4), "fm_relative": r(fm["relative"], 3),
        "fm_rate_hz": r(fm["rate_hz"], 3), "fm_depth_cents": r(fm["depth_cents"], 2),
    })
