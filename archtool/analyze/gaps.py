"""Gaps and dropouts: digital silence, sudden drops below the noise floor, zeroed frames.

Two sources of intervals, merged:
- digital silence: runs where every channel is within 1e-6 of zero for >= ``MIN_GAP_S``,
  not touching the start or end of the file (leading/trailing silence is not a dropout);
- drops: 5 ms envelope blocks more than ``DROP_DB`` below the file's noise floor
  (a zeroed STFT frame or a dropout leaves a hole quieter than the medium's own noise),
  in runs of >= ``MIN_GAP_S`` that start and end inside the programme.

Measures: ``intervals_s`` ([[start, end], ...], first ``MAX_INTERVALS``), ``count``,
``total_s``, ``fraction`` (of the duration).
"""
from __future__ import annotations

import numpy as np

from archtool.analyze._util import r, ramp
from archtool.analyze.features import Features, _runs
from archtool.analyze.profile import Finding

MIN_GAP_S = 0.008
DROP_DB = 20.0
MERGE_S = 0.004
MAX_INTERVALS = 1000


def intervals(f: Features, noise_floor_dbfs: float) -> list[tuple[float, float]]:
    """Gap intervals in seconds, sorted and merged."""
    dur = f.duration_s
    edge = 0.5 / f.sample_rate + 1e-9
    zeros = [(a, b) for a, b in f.zero_runs_s if b - a >= MIN_GAP_S]
    out = [(a, b) for a, b in zeros if a > edge and b < dur - edge]
    env = f.env_db
    if env.size:
        thr = min(noise_floor_dbfs - DROP_DB, -60.0)
        low = env < thr
        s, e = _runs(low)
        # programme extent: first/last block above the floor
        live = np.flatnonzero(env > noise_floor_dbfs)
        if live.size:
            first, last = live[0], live[-1]
            hop = f.env_hop_s
            for a, b in zip(s, e):
                if a <= first or b > last:
                    continue
                t0, t1 = a * hop, b * hop
                if (b - a) * hop >= MIN_GAP_S and not any(za < t1 and zb > t0 for za, zb in zeros):
                    out.append((t0, t1))
    if not out:
        return []
    out.sort()
    merged = [list(out[0])]
    for a, b in out[1:]:
        if a <= merged[-1][1] + MERGE_S:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(float(a), float(b)) for a, b in merged]


def detect(f: Features, noise_floor_dbfs: float) -> Finding:
    iv = intervals(f, noise_floor_dbfs)
    total = float(sum(b - a for a, b in iv))
    frac = total / max(f.duration_s, 1e-9)
    detected = len(iv) > 0
    sev = ramp(frac, 0.0, 0.2)
    conf = 0.9 if detected else 0.8
    return Finding("gaps", bool(detected), sev, conf, {
        "intervals_s": [[round(a, 4), round(b, 4)] for a, b in iv[:MAX_INTERVALS]],
        "count": len(iv), "total_s": r(total, 4), "fraction": r(frac, 5),
    })
