"""Gaps and dropouts: digital silence, sudden drops below the noise floor, zeroed frames.

Two sources of intervals, merged:
- digital silence: runs where every channel is within 1e-6 of zero for >= ``MIN_GAP_S``,
  not touching the start or end of the file (leading/trailing silence is not a dropout);
- drops: 5 ms envelope blocks more than ``DROP_DB`` below the file's noise floor, and below
  -60 dBFS (a zeroed STFT frame or a dropout leaves a hole quieter than the medium's own
  noise), in runs of >= ``MIN_GAP_S`` that start and end inside the programme (read from
  the envelope's runs below -60 dBFS and its level records, kept for the whole file).

Measures: ``intervals_s`` ([[start, end], ...], first ``MAX_INTERVALS``), ``count``,
``total_s``, ``fraction`` (of the duration).
"""
from __future__ import annotations

from archtool.analyze._util import r, ramp
from archtool.analyze.features import GAP_CEILING_DBFS, Features, _runs
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
    thr = min(noise_floor_dbfs - DROP_DB, GAP_CEILING_DBFS)
    # programme extent: first/last envelope block above the floor
    first, last = f.env_levels.first_above(noise_floor_dbfs), f.env_levels.last_above(noise_floor_dbfs)
    if first is not None and last is not None:
        hop = f.env_hop_s
        for start, end, top, vals in f.env_low_runs:
            if vals is None:  # a long quiet stretch past the stored values: whole or nothing
                spans = [(0, end - start)] if top < thr else []
            else:
                s, e = _runs(vals < thr)
                spans = zip(s, e)
            for a, b in spans:
                a, b = start + int(a), start + int(b)
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
