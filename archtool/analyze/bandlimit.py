"""Band limitation: the effective bandwidth (cutoff Hz) from the long-term spectrum.

The cutoff is the highest frequency at which the long-term average spectrum falls by a
steep edge (>= ``EDGE_DB`` within a few hundred Hz) and stays down up to Nyquist. A file
whose content stops well below Nyquist (and below ``LIMIT_HZ``) is band-limited. An edge
under which the spectrum is only lines (valleys between the partials as low as the level
above the edge: a pure or synthetic tone ending at its highest partial) is no band limit.

Measures: ``cutoff_hz`` (effective bandwidth), ``nyquist_hz``, ``edge_db`` (size of the
drop at the cutoff), ``ratio`` (cutoff / Nyquist), ``line_spectrum`` (an edge was set aside
as the end of a tonal spectrum; the learned decision layer keeps this verdict).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import db, margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

EDGE_DB = 15.0
LIMIT_HZ = 15000.0       # content up to here counts as full band for archival material
LIMIT_FRACTION = 0.8     # ... and so does content up to this fraction of Nyquist
LOW_RATE_NYQUIST = 5500.0
TONAL_VALLEY_DB = 10.0   # valleys under the edge this close to the stop band: a line spectrum
TONAL_VALLEY_DEPTH_DB = -25.0  # ... or the median level this far under the local peak
STEADY_VALLEY_DEPTH_DB, STEADY_DB = -10.0, 3.0  # ... or a peaky spectrum that never changes
NO_EDGE_VALLEY_DB = TONAL_VALLEY_DEPTH_DB  # the same test where no edge was found


def effective_cutoff(f: Features) -> tuple[float, float]:
    """``(cutoff_hz, edge_db)``: the effective bandwidth and the drop at it."""
    cutoff, edge, _ = _cutoff_and_tonal(f)
    return cutoff, edge


def _cutoff_and_tonal(f: Features) -> tuple[float, float, bool]:
    """``(cutoff_hz, edge_db, line_spectrum)``; ``line_spectrum`` is True when an edge was
    found but set aside because the spectrum under it is a set of lines."""
    nyq = f.sample_rate / 2.0
    L = db(f.mean_power + 1e-30)
    df = f.freqs[1] - f.freqs[0]
    w = max(3, int(round(250.0 / df)))
    n = L.size
    if n < 4 * w or not np.isfinite(L).any():
        return nyq, 0.0, False
    # running medians below/above each bin
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(L, w)
    med = np.median(win, axis=1)  # med[i] = median(L[i:i+w])
    k = np.arange(w, n - w)
    below = med[k - w]
    above = med[k]
    drop = below - above
    # what remains above the edge must stay well below the level under it
    tail_max = np.maximum.accumulate(med[::-1])[::-1]  # max of medians from i to the end
    stays = tail_max[k] <= below - EDGE_DB * 0.66
    lo_ok = f.freqs[k] >= 300.0
    cand = np.flatnonzero((drop >= EDGE_DB) & stays & lo_ok)
    if cand.size == 0:
        # no edge; still say whether the content is a line spectrum (then it ends at the
        # last partial, 50 dB under the strongest line, and the learned layer must not
        # read the emptiness above it as a band limit)
        top = np.flatnonzero(L >= np.max(L) - 50.0)
        tonal = bool(top.size and _valley_depth_db(L, f.freqs, int(top[-1]), w) < NO_EDGE_VALLEY_DB)
        return nyq, float(max(drop.max(initial=0.0), 0.0)), tonal
    # the highest contiguous run of candidates, refined to the
    # bin where the level crosses the mid-point of the edge
    runs = np.split(cand, np.flatnonzero(np.diff(cand) > 1) + 1)
    best = runs[-1]  # the highest-frequency edge: above it nothing is left
    j = best[np.argmax(drop[best])]
    # refine: the first bin, from the start of the edge region, that falls 6 dB below the
    # passband level just under it (median over ~500 Hz)
    k0 = k[best[0]]
    ref = float(np.median(L[max(k0 - 3 * w, 0): max(k0 - w, 1)]))
    seg = L[max(k0 - w, 0): k[best[-1]] + w]
    cross = np.flatnonzero(seg < ref - 6.0)
    kc = max(k0 - w, 0) + (int(cross[0]) if cross.size else w)
    if _line_spectrum_below(L, f.freqs, kc, w, f.noise_psd):
        # the "edge" is the last partial of a tonal spectrum, not the end of a band
        return nyq, 0.0, True
    return float(f.freqs[max(kc, 1)]), float(drop[j]), False


def _valley_depth_db(L: np.ndarray, freqs: np.ndarray, kc: int, w: int) -> float:
    """Median, over the bins from 300 Hz to bin ``kc``, of the level (dB) under the highest
    level within +-``w`` bins: near 0 for a smooth long-term spectrum (programme), tens of
    dB down between the partials of a tone."""
    from scipy.ndimage import maximum_filter1d

    lo300 = int(np.searchsorted(freqs, 300.0))
    if kc - lo300 < 4:
        return 0.0
    local = maximum_filter1d(L, 2 * w + 1, mode="nearest")
    return float(np.median((L - local)[lo300: kc + 1]))


def _line_spectrum_below(L: np.ndarray, freqs: np.ndarray, kc: int, w: int, noise_psd: np.ndarray) -> bool:
    """True when the spectrum under the edge at bin ``kc`` is a set of lines (pure tones,
    synthetic partials) rather than broadband content: either the 25th percentile of the
    octave below the edge lies within ``TONAL_VALLEY_DB`` of the median level above it
    (the valleys between partials are as empty as the stop band), or the median level
    from 300 Hz to the edge lies more than ``-TONAL_VALLEY_DEPTH_DB`` under the local
    maximum (:func:`_valley_depth_db`; programme spectra are smooth, about -2 to -19 dB, a
    tone -35 dB and below), or more than ``-STEADY_VALLEY_DEPTH_DB`` under it while the
    spectrum never changes (the time-averaged power within ``STEADY_DB`` of the
    quiet-frame noise estimate, as for a held synthetic chord; a programme moves)."""
    lo = int(np.searchsorted(freqs, max(freqs[kc] / 2.0, 300.0)))
    below = L[lo: max(kc - w // 2, lo + 1)]
    above = L[min(kc + w, L.size - 1):]
    if below.size < 4 or above.size < 4:
        return False
    if float(np.percentile(below, 25)) - float(np.median(above)) < TONAL_VALLEY_DB:
        return True
    depth_db = _valley_depth_db(L, freqs, int(0.95 * kc), w)
    if depth_db < TONAL_VALLEY_DEPTH_DB:
        return True
    lo300 = int(np.searchsorted(freqs, 300.0))
    sel = slice(lo300, max(int(0.95 * kc), lo300 + 1))
    steady = float(np.median(L[sel] - 10.0 * np.log10(np.asarray(noise_psd[sel], dtype=np.float64) + 1e-30)))
    return bool(depth_db < STEADY_VALLEY_DEPTH_DB and steady < STEADY_DB)


def detect(f: Features) -> Finding:
    nyq = f.sample_rate / 2.0
    cutoff, edge, tonal = _cutoff_and_tonal(f)
    limit = min(LIMIT_FRACTION * nyq, LIMIT_HZ)
    detected = cutoff < limit or nyq < LOW_RATE_NYQUIST
    # severity grows as the bandwidth shrinks (log scale: 15 kHz -> 0, 2 kHz -> 1)
    sev = ramp(np.log2(LIMIT_HZ / max(min(cutoff, nyq), 1.0)), 0.0, np.log2(LIMIT_HZ / 2000.0))
    conf = margin_confidence(np.log2(limit / max(cutoff, 1.0)), 0.0, 0.15) if nyq >= LOW_RATE_NYQUIST else 0.95
    return Finding("bandlimit", bool(detected), sev, conf,
                   {"cutoff_hz": r(cutoff, 1), "nyquist_hz": r(nyq, 1), "edge_db": r(edge, 1),
                    "ratio": r(cutoff / nyq, 3), "line_spectrum": bool(tonal)})
