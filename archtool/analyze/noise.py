"""Broadband noise: noise floor, its power spectrum, and the estimated SNR.

The noise spectrum is estimated in two steps. Per bin, a low percentile of the
time-smoothed frame power (minimum statistics, bias-corrected on Gaussian noise) bounds
the noise from above; it overestimates noise wherever music or speech never pauses. Then a
smooth coloured-noise model (a power law, slope -6..+3 dB/octave) is fitted as the lower
envelope of that estimate over the effective band, and the noise spectrum is the smaller
of the two. SNR = (total power - noise power) / noise power, both as mean squares.

The figures reported are refined (:func:`refine`, after the learned decision layer has
read the first estimate it was trained on; without digital silence or a collapsed fit they
are that estimate). Digital silence does not count: frames at or below -110 dBFS never
enter the noise spectrum (:class:`~archtool.analyze.features.FeatureAccumulator`), and in
a file with digital-silence runs (dropouts zeroed to exact silence) the noise is
re-estimated from the spectra of the frames that touch no such run
(``Features.noise_psd_clear``, ``mean_power_clear``; :func:`gap_free`), with the total
power taken outside those runs (:func:`programme_mean_square`): a frame cut by a dropout
edge is part silence (its floor too low) and part splatter (a step spreads power over the
whole band, which can hide a low-pass from the band-limit detector). And a noise floor
fitted across the empty stop band of a low-pass that the band-limit detector missed (it
collapsed to ~-140 dBFS, an SNR of ~130 dB) is re-fitted below the noise spectrum's own
upper edge (:func:`refit_collapsed`). A file that holds nothing but digital silence has no
programme to compare a noise with: its ``snr_db`` is None (undefined, never a
clean-programme figure) and its ``noise_floor_dbfs`` -200.

Measures: ``snr_db``; ``noise_floor_dbfs`` (noise mean square, dB re full scale);
``noise_psd`` (expected ``|rfft(hann * x)|^2`` per bin of an ``n_fft``-point frame, periodic
Hann from ``scipy.signal.get_window("hann", n_fft)``, unnormalised numpy rfft);
``noise_psd_n_fft``; ``noise_slope_db_per_octave`` (colour: 0 white, -3 pink, -6 brown).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from archtool.analyze._util import db, margin_confidence, r, ramp
from archtool.analyze.features import Features, _spectrum_to_ms
from archtool.analyze.profile import Finding

SNR_THRESHOLD_DB = 30.0
SLOPES = np.arange(-6.0, 3.01, 0.5)
NOISE_EDGE_DB = 30.0       # an upper edge of the noise spectrum: everything above it this far down
NOISE_EDGE_WINDOW_HZ = 250.0
NOISE_EDGE_MIN_HZ = 300.0
NOISE_EDGE_START_DB = 3.0
COLLAPSED_FLOOR_DBFS = -120.0  # a fitted noise floor under this sits in a stop band


def noise_band_top(f: Features) -> float | None:
    """Upper edge (Hz) of the noise spectrum ``f.noise_psd``, or None when it has none.

    The lowest frequency (>= ``NOISE_EDGE_MIN_HZ``) above which the running median of the
    noise spectrum (dB, over ``NOISE_EDGE_WINDOW_HZ``) stays at least ``NOISE_EDGE_DB``
    under its median over the ``NOISE_EDGE_WINDOW_HZ`` just below: the stop band of a
    low-pass that came after the noise. Coloured noise falls at most ~6 dB/octave and has
    no such edge. The edge returned is where the fall begins (the running median first
    ``NOISE_EDGE_START_DB`` under the level of the band below it).
    """
    est = np.asarray(f.noise_psd, dtype=np.float64)
    fr = f.freqs
    if est.size < 8 or fr.size < 2:
        return None
    w = max(3, int(round(NOISE_EDGE_WINDOW_HZ / (fr[1] - fr[0]))))
    if est.size < 3 * w:
        return None
    from numpy.lib.stride_tricks import sliding_window_view

    med = np.median(sliding_window_view(db(est + 1e-30), w), axis=1)  # med[i]: bins i..i+w-1
    k = np.arange(w, med.size)
    below = med[k - w]
    tail_max = np.maximum.accumulate(med[::-1])[::-1][k]
    hit = np.flatnonzero((tail_max <= below - NOISE_EDGE_DB) & (fr[k] >= NOISE_EDGE_MIN_HZ))
    if not hit.size:
        return None
    # the edge starts where the spectrum first falls NOISE_EDGE_START_DB under the level of
    # the band just below the drop (the filter's transition band holds no usable floor)
    j = int(k[hit[0]])
    lo = max(j - 3 * w, 0)
    ref = float(np.median(med[lo: max(j - w, lo + 1)]))
    fall = np.flatnonzero(med[lo: j + 1] < ref - NOISE_EDGE_START_DB)
    start = lo + (int(fall[0]) if fall.size else j - lo)
    return float(max(fr[start], NOISE_EDGE_MIN_HZ))


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


def gap_free(f: Features) -> Features:
    """``f`` with its long-term and noise spectra taken from the frames that touch no
    digital-silence run (``f`` itself when there is none, or no such frame)."""
    if f.mean_power_clear is None or f.noise_psd_clear is None or not f.zero_runs_s:
        return f
    return replace(f, mean_power=f.mean_power_clear, noise_psd=f.noise_psd_clear)


def programme_mean_square(f: Features) -> float:
    """Mean square of the mono mix over the samples outside digital-silence runs (0 when
    there are none). Equals ``f.mono_mean_square`` for a file without digital silence."""
    silent = sum(b - a for a, b in f.zero_runs_s) * f.sample_rate
    live = f.n_samples - silent
    if live < 0.5:
        return 0.0
    return f.mono_mean_square * f.n_samples / live


def estimate(f: Features, top_hz: float | None = None, *, programme_only: bool = False) -> dict:
    """SNR and noise floor numbers (used by the noise finding and by other detectors).

    The total power is the file's mean square, or with ``programme_only`` the mean square
    outside digital-silence runs (:func:`programme_mean_square`). ``snr_db`` is NaN
    (reported as None) when the total power is 0 (nothing but digital silence).
    """
    psd, slope = noise_model(f, top_hz)
    pn = _spectrum_to_ms(psd, f.n_fft)
    pt = programme_mean_square(f) if programme_only else f.mono_mean_square
    if pt <= 0:
        snr = float("nan")
    elif pn <= 0:
        snr = float("inf")
    else:
        snr = float(db(max(pt - pn, pn * 1e-6)) - db(pn))
    return {"snr_db": snr, "noise_floor_dbfs": float(db(pn)) if pn > 0 else -200.0,
            "noise_psd": psd, "slope": slope}


def detect(f: Features, top_hz: float | None = None, *, programme_only: bool = False) -> Finding:
    """The noise finding of the first estimate (the learned layer's input); see :func:`refine`."""
    return _finding(f, estimate(f, top_hz, programme_only=programme_only))


def _finding(f: Features, e: dict) -> Finding:
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


def refine(fd: Finding, f: Features) -> None:
    """The reported noise finding: ``fd`` (from :func:`detect` on ``f``) re-estimated, in
    place, away from digital-silence dropouts (when ``f`` has any: :func:`gap_free`, with
    the band limit read from the same spectra) and re-fitted if its floor collapsed into a
    stop band (:func:`refit_collapsed`). Unchanged for a file with neither."""
    g = gap_free(f)
    if g is not f:
        from archtool.analyze.bandlimit import effective_cutoff

        cutoff = effective_cutoff(g)[0]
        _adopt(fd, detect(g, top_hz=cutoff if cutoff < 0.95 * f.sample_rate / 2 else None, programme_only=True))
    refit_collapsed(fd, f)


def _adopt(fd: Finding, new: Finding) -> None:
    """``fd`` takes ``new``'s verdict and measures (in place; measures it lacks stay)."""
    fd.detected, fd.severity, fd.confidence = new.detected, new.severity, new.confidence
    fd.measures.update(new.measures)


def refit_collapsed(fd: Finding, f: Features) -> bool:
    """Re-estimate a noise finding whose floor collapsed into a stop band (in place).

    When the fitted noise floor lies under ``COLLAPSED_FLOOR_DBFS`` (below 20-bit
    quantisation noise: the numerical floor of a stop band, not a medium's noise) and the
    noise spectrum has an upper edge (:func:`noise_band_top`) below the band the fit
    covered, the band-limit detector missed a low-pass (clipping or other distortion after
    it can refill the long-term spectrum above the cutoff) and the power-law floor was
    fitted across the empty stop band. The finding is then re-estimated below that edge;
    its collapsed SNR stays as ``measures["snr_db_collapsed_fit"]``. Returns whether it
    was.
    """
    floor = fd.measures.get("noise_floor_dbfs")
    if floor is None or floor >= COLLAPSED_FLOOR_DBFS:
        return False
    g = gap_free(f)
    edge = noise_band_top(g)
    if edge is None or edge >= min(0.45 * f.sample_rate, 20000.0):
        return False
    e = estimate(g, edge, programme_only=True)
    if not e["noise_floor_dbfs"] > floor:
        return False
    old_snr = fd.measures.get("snr_db")
    _adopt(fd, _finding(f, e))
    fd.measures["noise_band_top_hz"] = r(edge, 1)
    fd.measures["snr_db_collapsed_fit"] = old_snr
    return True
