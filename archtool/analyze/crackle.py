"""Crackle: dense small impulses (many AR-residual outliers per second).

Crackle shows as a high rate of residual outlier events of every size, most of them not
isolated; clean speech produces some outliers (glottal pulses, plosives), so the rate of
large events (``ratio >= RATIO``) is what decides.

Measures: ``rate_per_s`` (events with ratio >= ``RATIO``), ``all_rate_per_s`` (every
outlier event), ``isolated_rate_per_s``.
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

RATIO = 20.0
MIN_RATE = 3.0


def detect(f: Features) -> Finding:
    from archtool.analyze.clicks import genuine_events

    dur = max(f.duration_s, 1e-9)
    ok = genuine_events(f)
    big = (f.click_ratio >= RATIO) & ok
    w = f.click_weight
    rate = float(np.count_nonzero(big)) * w / dur
    iso_rate = float(np.count_nonzero((f.click_ratio >= 10) & (f.click_isolation >= 3) & ok)) * w / dur
    all_rate = float(np.count_nonzero(ok)) * w / dur
    detected = rate >= MIN_RATE
    sev = ramp(np.log10(max(rate, 1e-3)), np.log10(MIN_RATE), np.log10(100.0))
    conf = margin_confidence(np.log10(max(rate, 1e-3)), np.log10(MIN_RATE), 0.3)
    return Finding("crackle", bool(detected), sev, conf, {
        "rate_per_s": r(rate, 2), "all_rate_per_s": r(all_rate, 2), "isolated_rate_per_s": r(iso_rate, 2),
    })
