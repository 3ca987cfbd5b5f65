"""Reverberation: blind decay-rate (RT60) and direct-to-reverberant ratio estimates.

Two blind measures, both from the streamed features:

* **Free decays** of the 5 ms envelope (dB): every strong onset followed by a fall of at
  least ``FIT_RANGE_DB`` before the level rises again or reaches the recording's floor
  (a low percentile of the envelope itself: the reverberant tail fills the quiet frames,
  so a percentile of the noise spectrum would sit on the tail) gives a slope, fitted by
  least squares between -5 and -5-``FIT_RANGE_DB`` dB below the peak. The RT60 estimate
  is the 35th percentile of the per-decay times (later sounds lengthen some decays). The DRR proxy is the median, over decays, of the
  peak level minus the decay line extrapolated back to the peak time (the part of the
  peak that the reverberant tail does not explain); it is not a measured DRR.
* **Decay-rate distribution** (``Features.slope_hist``): the slopes, over 0.1 s, of the
  levels of 12 bands from 150 Hz to 8 kHz. A room cannot decay faster than 60 dB per
  RT60, so the steepest falls of a dry recording (abrupt offsets, 400-900 dB/s for
  speech) are missing in a reverberant one (about 150-250 dB/s). Where too few free
  decays exist (dense music), RT60 comes from the 5th percentile of this distribution.

Measures: ``rt60_s``, ``drr_db``, ``decays`` (free decays fitted), ``rt60_source``
("decays" or "slopes"), ``steepest_decay_db_per_s`` (1st percentile of the slopes),
``slope_p5_db_per_s``, ``slope_count``.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d

from archtool.analyze._util import margin_confidence, r, ramp
from archtool.analyze.features import SLOPE_EDGES, Features
from archtool.analyze.profile import Finding

FIT_RANGE_DB = 10.0
ENV_FLOOR_PERCENTILE = 2.0   # the envelope's floor for free decays
RT60_THRESHOLD_S = 0.45
MIN_DECAYS = 2
DECAY_PERCENTILE = 35.0      # overlapping sounds lengthen decays: a low-middle percentile
MIN_SLOPES = 100             # histogram counts needed for the slope-based figures
MIN_SLOPES_DETECTED = 10     # ... once reverberation is detected (the figure is only its size)
SLOPE_RT60_SCALE = 1.6       # 60 / |5th-percentile slope| underestimates RT60 (direct-path falls)
SEVERITY_RT60_S = (0.2, 1.2)  # severity 0 .. 1 over this RT60 range


def decays(f: Features, floor_dbfs: float, fit_range_db: float = FIT_RANGE_DB) -> tuple[np.ndarray, np.ndarray]:
    """Per-decay RT60 (s) and DRR proxy (dB), from falls of at least ``fit_range_db``
    starting ``fit_range_db + 10`` dB above ``floor_dbfs`` and ending above ``floor_dbfs + 6``."""
    env = uniform_filter1d(f.env_db, size=3, mode="nearest")
    hop = f.env_hop_s
    n = env.size
    if n < 20:
        return np.zeros(0), np.zeros(0)
    floor = floor_dbfs + 6.0
    look = int(round(0.05 / hop))
    rts, drrs = [], []
    max_len = int(round(2.5 / hop))
    # local peaks: the highest point within +-50 ms, well above the floor
    is_peak = (env >= maximum_filter1d(env, 2 * look + 1, mode="nearest")) & (env >= floor + fit_range_db + 10.0)
    peaks = np.flatnonzero(is_peak[: n - 4])
    peaks = peaks[peaks >= look]
    i = look
    for i0 in peaks:
        if i0 < i:  # inside the previous decay
            continue
        i = int(i0)
        peak = env[i]
        # the free decay ends where the level rises 3 dB over its running minimum or
        # reaches the floor
        end = min(n, i + max_len)
        after = env[i + 1: end]
        run_min = np.minimum.accumulate(np.minimum(after, peak))
        stop = np.flatnonzero((after > run_min + 3.0) | (after < floor))
        j = i + 1 + (int(stop[0]) if stop.size else after.size)
        seg = env[i:j]
        sel = np.flatnonzero((seg <= peak - 5.0) & (seg >= peak - 5.0 - fit_range_db))
        if seg.min(initial=peak) <= peak - 5.0 - fit_range_db and sel.size >= 3:
            t = sel * hop
            slope, icpt = np.polyfit(t, seg[sel], 1)
            if slope < -1.0:
                rts.append(-60.0 / slope)
                drrs.append(peak - icpt)
        i = max(j, i + 1)
    return np.asarray(rts), np.asarray(drrs)


def envelope_floor(f: Features) -> float:
    """The ``ENV_FLOOR_PERCENTILE``-th percentile of the non-silent 5 ms envelope (dBFS)."""
    live = f.env_db[f.env_db > -110.0]
    return float(np.percentile(live, ENV_FLOOR_PERCENTILE)) if live.size else -110.0


def slope_percentile(hist: np.ndarray, q: float) -> float:
    """The ``q``-th percentile (dB/s) of a decay-rate histogram; NaN when it is empty."""
    total = int(hist.sum())
    if total == 0:
        return float("nan")
    centres = 0.5 * (SLOPE_EDGES[1:] + SLOPE_EDGES[:-1])
    return float(centres[min(int(np.searchsorted(np.cumsum(hist), q / 100.0 * total)), centres.size - 1)])


def detect(f: Features, noise_floor_dbfs: float | None = None) -> Finding:
    """``noise_floor_dbfs`` is accepted for the detectors' common signature; the free
    decays are bounded by the envelope's own floor (see the module docstring)."""
    rts, drrs = decays(f, envelope_floor(f))
    n_sl = int(f.slope_hist.sum())
    p1 = slope_percentile(f.slope_hist, 1.0) if n_sl >= MIN_SLOPES else float("nan")
    p5 = slope_percentile(f.slope_hist, 5.0) if n_sl >= MIN_SLOPES else float("nan")
    drr = float(np.median(drrs)) if rts.size else float("nan")
    if rts.size >= MIN_DECAYS:
        rt60, source = float(np.percentile(rts, DECAY_PERCENTILE)), "decays"
    elif np.isfinite(p5) and p5 < 0:
        rt60, source = SLOPE_RT60_SCALE * 60.0 / -p5, "slopes"
    else:
        rt60, source = float("nan"), None
    detected = bool(np.isfinite(rt60) and rt60 >= RT60_THRESHOLD_S)
    sev = ramp(rt60, *SEVERITY_RT60_S)
    support = min(1.0, rts.size / 6.0) if source == "decays" else min(1.0, n_sl / 1000.0) * 0.7
    conf = margin_confidence(rt60, RT60_THRESHOLD_S, 0.15) * max(support, 0.3) if source else 0.3
    return Finding("reverb", detected, sev, conf, {
        "rt60_s": r(rt60, 3), "drr_db": r(drr, 2), "decays": int(rts.size), "rt60_source": source,
        "steepest_decay_db_per_s": r(p1, 1), "slope_p5_db_per_s": r(p5, 1), "slope_count": n_sl,
    })


def complete_rt60(finding: Finding, f: Features) -> None:
    """Give a detected reverb finding without an RT60 (no free decays, fewer than
    ``MIN_SLOPES`` slopes: dense music) the slope-based figure from as few as
    ``MIN_SLOPES_DETECTED`` slopes (from windows 10 dB over the band floor when those 20 dB
    over it are too few), and the severity that goes with it (in place), so the
    planner can size dereverberation. Used after the decision layer: the rule's own
    measures (the decision layer's inputs) are left as they were."""
    if not finding.detected or finding.measures.get("rt60_s") is not None:
        return
    hist = f.slope_hist if int(f.slope_hist.sum()) >= MIN_SLOPES_DETECTED else f.slope_hist_lo
    if int(hist.sum()) < MIN_SLOPES_DETECTED:
        return
    p5 = slope_percentile(hist, 5.0)
    if not (np.isfinite(p5) and p5 < 0):
        return
    rt60 = SLOPE_RT60_SCALE * 60.0 / -p5
    finding.measures.update({"rt60_s": r(rt60, 3), "rt60_source": "slopes (few)", "slope_p5_db_per_s": r(p5, 1)})
    finding.severity = max(finding.severity, ramp(rt60, *SEVERITY_RT60_S))
