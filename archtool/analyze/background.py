"""Background mixture: non-stationary ambient sound under the programme (blind).

A stationary noise floor (hiss, hum) keeps the quiet frames at the noise-floor level;
a mixed-in ambience (kitchen, traffic, animals) keeps changing, so the quiet frames sit
well above the floor and vary. Measures the level of the quietest 20 % of frames above
the stationary floor and their spread.

Measures: ``excess_db`` (20th percentile frame level minus the noise floor, dB),
``spread_db`` (inter-quartile range of the quietest half of frames), ``level_dbfs``.
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import Features
from archtool.analyze.profile import Finding

EXCESS_DB = 12.0
SPREAD_DB = 6.0


def detect(f: Features, noise_floor_dbfs: float) -> Finding:
    fd = f.frame_db[f.frame_db > -110.0]
    if fd.size < 10:
        return Finding("background", False, 0.0, 0.3, {"excess_db": None, "spread_db": None, "level_dbfs": None})
    q20 = float(np.percentile(fd, 20))
    quiet = np.sort(fd)[: max(5, fd.size // 2)]
    spread = float(np.percentile(quiet, 75) - np.percentile(quiet, 25))
    excess = q20 - noise_floor_dbfs
    detected = excess >= EXCESS_DB and spread >= SPREAD_DB and q20 > -60.0
    sev = ramp(q20, -60.0, -20.0)
    conf = 0.5 * margin_confidence(excess, EXCESS_DB, 6.0) + 0.1
    return Finding("background", bool(detected), sev, conf, {
        "excess_db": r(excess, 2), "spread_db": r(spread, 2), "level_dbfs": r(q20, 2),
    })
