"""Band limitation: the effective bandwidth (cutoff Hz) from the long-term spectrum.

The cutoff is the highest frequency at which the long-term average spectrum falls by a
steep edge (>= ``EDGE_DB`` within a few hundred Hz) and stays down up to Nyquist. A file
whose content stops well below Nyquist (and below ``LIMIT_HZ``) is band-limited.

Measures: ``cutoff_hz`` (effective bandwidth), ``nyquist_hz``, ``edge_db`` (size of the
drop at the cutoff), ``ratio`` (cutoff / Nyquist).
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


def effective_cutoff(f: Features) -> tuple[float, float]:
    """``(cutoff_hz, edge_db)``: the effective bandwidth and the drop at it."""
    nyq = f.sample_rate / 2.0
    L = db(f.mean_power + 1e-30)
    df = f.freqs[1] - f.freqs[0]
    w = max(3, int(round(250.0 / df)))
    n = L.size
    if n < 4 * w or not np.isfinite(L).any():
        return nyq, 0.0
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
        return nyq, float(max(drop.max(initial=0.0), 0.0))
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
    return float(f.freqs[max(kc, 1)]), float(drop[j])


def detect(f: Features) -> Finding:
    nyq = f.sample_rate / 2.0
    cutoff, edge = effective_cutoff(f)
    limit = min(LIMIT_FRACTION * nyq, LIMIT_HZ)
    detected = cutoff < limit or nyq < LOW_RATE_NYQUIST
    # severity grows as the bandwidth shrinks (log scale: 15 kHz -> 0, 2 kHz -> 1)
    sev = ramp(np.log2(LIMIT_HZ / max(min(cutoff, nyq), 1.0)), 0.0, np.log2(LIMIT_HZ / 2000.0))
    conf = margin_confidence(np.log2(limit / max(cutoff, 1.0)), 0.0, 0.15) if nyq >= LOW_RATE_NYQUIST else 0.95
    return Finding("bandlimit", bool(detected), sev, conf,
                   {"cutoff_hz": r(cutoff, 1), "nyquist_hz": r(nyq, 1), "edge_db": r(edge, 1),
                    "ratio": r(cutoff / nyq, 3)})
