"""Clicks: isolated impulses found as outliers of an autoregressive model's residual.

Features (see :mod:`archtool.analyze.features`): an AR(20) model is re-estimated every
STFT hop; residual samples beyond ``CLICK_THRESHOLD`` x the local robust scale form
events. A click is an event that is both large (``ratio >= RATIO``) and isolated (its
peak at least ``ISOLATION`` x the largest residual 1.5-10 ms around it), which rejects
glottal pulses and other periodic excitation.

Measures: ``rate_per_s``, ``count``, ``positions_s`` (first ``MAX_POSITIONS``),
``median_ratio`` (median event size in local residual scale units).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

RATIO = 15.0
ISOLATION = 3.0
MIN_COUNT = 3
MIN_RATE = 0.25
MAX_POSITIONS = 500


EDGE_GUARD_S = 0.005


def genuine_events(f: Features) -> np.ndarray:
    """Residual events not explained by the edges of digital-silence runs (gaps start and
    end abruptly, which an AR model cannot predict)."""
    keep = np.ones(f.click_times_s.size, dtype=bool)
    if f.zero_runs_s and keep.size:
        edges = np.sort(np.array([t for run in f.zero_runs_s for t in run]))
        i = np.clip(np.searchsorted(edges, f.click_times_s), 1, edges.size - 1) if edges.size > 1 else np.zeros(keep.size, int)
        near = np.minimum(np.abs(f.click_times_s - edges[i]), np.abs(f.click_times_s - edges[np.maximum(i - 1, 0)]))
        keep &= near > EDGE_GUARD_S
    return keep


def click_mask(f: Features) -> np.ndarray:
    """Which residual events count as clicks."""
    return (f.click_ratio >= RATIO) & (f.click_isolation >= ISOLATION) & genuine_events(f)


def detect(f: Features) -> Finding:
    m = click_mask(f)
    dur = max(f.duration_s, 1e-9)
    count = int(np.count_nonzero(m)) * f.click_weight
    rate = count / dur
    detected = count >= MIN_COUNT and rate >= MIN_RATE
    sev = ramp(np.log10(max(rate, 1e-3)), np.log10(MIN_RATE), np.log10(20.0))
    conf = margin_confidence(np.log10(max(rate, 1e-3)), np.log10(MIN_RATE), 0.4)
    pos = f.click_times_s[m][:MAX_POSITIONS]  # a uniform sample when click_weight > 1
    return Finding("clicks", bool(detected), sev, conf, {
        "rate_per_s": r(rate, 3), "count": count,
        "positions_s": [round(float(t), 4) for t in pos],
        "positions_truncated": bool(count > MAX_POSITIONS),
        "median_ratio": r(float(np.median(f.click_ratio[m])) if count else 0.0, 2),
    })
