"""Declipping: rebuild flat-topped runs by least-squares AR interpolation constrained to
be consistent with the clip level (the true waveform lay beyond it, on the same side).

Clipped samples are those within ``tol`` of the clip level (runs of at least ``min_run``
samples, single peak samples are left alone). They are re-estimated by
least-squares AR interpolation (the LSAR criterion of :mod:`archtool.dsp.ar`, local
models estimated from unclipped samples) under the consistency constraint that each
rebuilt sample lies beyond the clip level on its clipped side (bounded least squares). Everything is local, so chunks agree with
whole-file runs once the context covers a run and its model window.
"""
from __future__ import annotations

import numpy as np

from archtool.dsp.ar import ar_estimate, missing_runs

__all__ = ["clipped_mask", "declip"]


def clipped_mask(x: np.ndarray, level: float, tol: float = 1e-3, min_run: int = 2) -> np.ndarray:
    """Samples of the 1-D ``x`` at the clip level (|x| >= level * (1 - tol)) in runs of >= ``min_run``."""
    m = np.abs(x) >= level * (1.0 - tol)
    if min_run > 1 and m.any():
        for r0, r1 in missing_runs(m):
            if r1 - r0 < min_run:
                m[r0:r1] = False
    return m


def _constrained_fill(x: np.ndarray, miss: np.ndarray, lev: float, p: int, cap: float = 1.25,
                      max_span: int = 400) -> np.ndarray:
    """Per cluster of clipped runs: minimise the AR prediction error over the missing
    samples subject to ``sign * value >= lev`` (bounded least squares)."""
    from scipy.optimize import lsq_linear

    y = x.copy()
    n = x.shape[0]
    runs = missing_runs(miss)
    groups: list[tuple[int, int]] = []
    g0 = 0
    for i in range(1, len(runs) + 1):
        # Runs closer than p interact; long chains are cut (bounded solve size).
        if i == len(runs) or runs[i, 0] - runs[i - 1, 1] > p or runs[i, 1] - runs[g0, 0] > max_span:
            groups.append((int(runs[g0, 0]), int(runs[i - 1, 1])))
            g0 = i
    for start, stop in groups:
        ctx = max(8 * p, 2 * (stop - start), 512)
        lo, hi = max(0, start - ctx), min(n, stop + ctx)
        a, _ = ar_estimate(x[lo:hi], p, valid=~miss[lo:hi])
        b = np.concatenate(([1.0], -a))
        s0, s1 = max(0, start - 2 * p), min(n, stop + 2 * p)
        seg = y[s0:s1]
        L = s1 - s0
        if L <= p + 1:
            continue
        rows = L - p
        A = np.zeros((rows, L))
        idx = np.arange(rows)
        for k in range(p + 1):
            A[idx, idx + p - k] = b[k]
        m = miss[s0:s1].copy()
        Au, Ak = A[:, m], A[:, ~m]
        sgn = np.sign(seg[m])
        lb = np.where(sgn > 0, lev, -np.inf)
        ub = np.where(sgn > 0, np.inf, -lev)
        # Start from the clipped values (feasible); bounded least squares.
        res = lsq_linear(Au, -Ak @ seg[~m], bounds=(lb, ub), method="bvls", lsq_solver="exact")
        vals = np.clip(res.x, lb, ub)
        # Never more than `cap` x the clip level (guards ill-conditioned long runs).
        seg = seg.copy()
        seg[m] = np.clip(vals, -cap * lev, cap * lev)
        y[s0:s1] = seg
    return y


def declip(audio: np.ndarray, clip_level: float | list[float] | None, sample_rate: int, *,
           order: int = 32, rounds: int = 3, tol: float = 1e-3, min_run: int = 2,
           max_run_ms: float = 10.0) -> np.ndarray:
    """Declip ``audio`` ``(C, N)``.

    Args:
        clip_level: positive clip level (one or per channel), e.g. the analysis'
            ``clip_level``; None uses each channel's peak when it is reached by a run of
            ``min_run`` samples.
        order: AR order at 44.1 kHz (scaled with the rate, 10..48).
        rounds: consistency rounds.
        max_run_ms: longer flat runs are left alone (digital silence at full scale is
            not clipping).

    Returns:
        float64 ``(C, N)``.
    """
    x = np.asarray(audio, dtype=np.float64)
    out = x.copy()
    C = x.shape[0]
    levels = np.broadcast_to(np.asarray(clip_level if clip_level is not None else np.nan, dtype=float), (C,))
    p = int(np.clip(round(order * sample_rate / 44100), 10, 48))
    max_run = int(max_run_ms * 1e-3 * sample_rate)
    for c in range(C):
        lev = float(levels[c])
        if not np.isfinite(lev) or lev <= 0:
            lev = float(np.max(np.abs(x[c]))) if x.shape[1] else 0.0
        if lev <= 0:
            continue
        miss = clipped_mask(x[c], lev, tol, min_run)
        for r0, r1 in missing_runs(miss):
            if r1 - r0 > max_run:
                miss[r0:r1] = False
        if not miss.any():
            continue
        out[c] = _constrained_fill(x[c], miss, lev, p)
    return out
