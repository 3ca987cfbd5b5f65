"""Short-gap interpolation with autoregressive models, from both sides of a gap.

Two estimators of a contiguous run of missing samples ``x[start:stop]`` (pure
functions on 1-D float arrays; ``x``'s values inside the gap are ignored):

- :func:`janssen_interpolate` -- Janssen, Veldhuis & Vries (1986): alternate between
  estimating an AR model of the segment around the gap (first from the known
  samples only, then from the segment with the gap filled) and least-squares AR
  interpolation of the gap given that model (``archtool.dsp.ar.ar_interpolate``).
  The LSAR solution uses the known samples on *both* sides at once.
- :func:`bidirectional_extrapolate` -- forward prediction from the left context with
  a model fitted on the left, backward prediction from the right context with a
  model fitted on the right, cross-faded with a raised cosine over the gap
  (Etter 1996; Kauppinen & Roth 2002). It keeps the energy up in the middle of
  longer gaps, where LSAR decays towards zero.

:func:`ar_fill` is the short-gap method restore uses (Janssen); the cheap
bidirectional prediction initialises the phase of long gaps before the U-Net path.
:func:`ar_order_for` picks the model order from the gap length and rate.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, solveh_banded
from scipy.signal import lfilter, lfiltic

from archtool.dsp.ar import ar_estimate, ar_interpolate

__all__ = ["ar_order_for", "lsar_contiguous", "janssen_interpolate", "side_predictions",
           "bidirectional_extrapolate", "ar_fill", "prediction_agreement"]


def ar_order_for(gap_samples: int, sample_rate: int) -> int:
    """Model order for a gap: twice the gap length, within [16, 20 ms of samples].

    Against orders of one gap length capped at 10 ms, on held-out clips with 10-50 ms
    gaps (16 gaps each), this gained 2.1-3.8 dB SNR on music and changed speech by
    -0.3 to +0.1 dB.
    """
    cap = max(16, int(round(0.020 * sample_rate)))
    return int(min(max(16, 2 * gap_samples), cap))


def _context(gap: int, order: int, sample_rate: int) -> int:
    return int(max(4 * order, 2 * gap, round(0.040 * sample_rate)))


def lsar_contiguous(seg: np.ndarray, start: int, stop: int, a: np.ndarray) -> np.ndarray:
    """LSAR fill of one contiguous gap ``seg[start:stop]`` with AR coefficients ``a`` ``(p,)``.

    Needs ``start >= p`` and ``stop + p <= len(seg)``. The normal equations of a single
    gap are banded (bandwidth ``p``) and Toeplitz, so they are solved by banded
    Cholesky in ``O(m p^2)`` rather than densely in ``O(m^3)`` -- gaps of several
    hundred milliseconds stay cheap. Returns ``(stop - start,)`` float64.
    """
    p = a.shape[0]
    m = stop - start
    b = np.concatenate(([1.0], -a))
    x0 = np.array(seg, dtype=np.float64)
    x0[start:stop] = 0.0
    e0 = np.convolve(x0, b)[: x0.shape[0]]
    rhs = -np.correlate(e0[start:stop + p], b, mode="valid")
    rb = np.correlate(b, b, mode="full")[p:]
    ab = np.zeros((p + 1, m))
    for k in range(min(p, m - 1) + 1):
        ab[p - k, k:] = rb[k]
    ab[p] += 1e-9 * (rb[0] + 1e-12)
    try:
        return solveh_banded(ab[p - min(p, m - 1):], rhs, lower=False)
    except (LinAlgError, ValueError):
        return np.zeros(m)


def _lsar(seg: np.ndarray, miss: np.ndarray, start: int, stop: int, a: np.ndarray) -> np.ndarray:
    """Whole segment with the gap filled: banded LSAR when the gap is interior, else ar.py's."""
    p = a.shape[0]
    if start >= p and stop + p <= seg.shape[0]:
        out = np.array(seg, dtype=np.float64)
        out[start:stop] = lsar_contiguous(seg, start, stop, a)
        return out
    return ar_interpolate(seg, miss, coeffs=a)


def janssen_interpolate(x: np.ndarray, start: int, stop: int, sample_rate: int, *,
                        order: int | None = None, iterations: int = 3,
                        context: int | None = None) -> np.ndarray:
    """Fill ``x[start:stop]`` by Janssen's iterative AR estimation + LSAR interpolation.

    Args:
        x: 1-D signal ``(n,)``, any float dtype.
        start, stop: the gap in samples, ``0 <= start < stop <= n``.
        sample_rate: Hz (only used to choose defaults).
        order: AR order (default :func:`ar_order_for`).
        iterations: model re-estimations after the first fill (0 gives plain LSAR).
        context: known samples used on each side (default ``max(4p, 2 * gap, 40 ms)``).

    Returns:
        The filled gap, shape ``(stop - start,)``, float64.
    """
    x = np.asarray(x, dtype=np.float64)
    gap = stop - start
    p = int(order or ar_order_for(gap, sample_rate))
    c = int(context or _context(gap, p, sample_rate))
    lo, hi = max(0, start - c), min(x.shape[0], stop + c)
    seg = x[lo:hi].copy()
    miss = np.zeros(seg.shape[0], dtype=bool)
    miss[start - lo:stop - lo] = True
    seg[miss] = 0.0
    known = int((~miss).sum())
    if known < 2 * p + 2:
        p = max(1, known // 4)
    if known < 4:
        return np.zeros(gap)
    a, _ = ar_estimate(seg, p, valid=~miss)
    g0, g1 = start - lo, stop - lo
    filled = _lsar(seg, miss, g0, g1, a)
    for _ in range(int(iterations)):
        a, _ = ar_estimate(filled, p, valid=np.ones(filled.shape[0], dtype=bool))
        filled = _lsar(seg, miss, g0, g1, a)
    return filled[miss]


def _predict(history: np.ndarray, a: np.ndarray, count: int) -> np.ndarray:
    """Continue ``history`` (oldest first, >= p samples) by ``count`` AR predictions."""
    p = a.shape[0]
    zi = lfiltic([1.0], np.concatenate(([1.0], -a)), history[::-1][:p])
    out, _ = lfilter([1.0], np.concatenate(([1.0], -a)), np.zeros(count), zi=zi)
    return out


def side_predictions(x: np.ndarray, start: int, stop: int, sample_rate: int, *,
                     order: int | None = None,
                     context: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The forward (from the left) and backward (from the right) AR predictions of the gap
    ``x[start:stop]``, each ``(stop - start,)`` float64, or None for a side with fewer than
    ``2p`` known samples. Order and context default as in :func:`janssen_interpolate`."""
    x = np.asarray(x, dtype=np.float64)
    n, gap = x.shape[0], stop - start
    p = int(order or ar_order_for(gap, sample_rate))
    c = int(context or _context(gap, p, sample_rate))
    left = x[max(0, start - c):start]
    right = x[stop:min(n, stop + c)][::-1]
    fwd = _predict(left, ar_estimate(left, p)[0], gap) if left.shape[0] >= 2 * p else None
    bwd = _predict(right, ar_estimate(right, p)[0], gap)[::-1] if right.shape[0] >= 2 * p else None
    return fwd, bwd


def bidirectional_extrapolate(x: np.ndarray, start: int, stop: int, sample_rate: int, *,
                              order: int | None = None, context: int | None = None) -> np.ndarray:
    """Cross-faded forward (from the left) and backward (from the right) AR prediction
    (:func:`side_predictions`); a side without enough context is not used (the other side
    carries the whole gap). Returns the gap, shape ``(stop - start,)``, float64.
    """
    gap = stop - start
    fwd, bwd = side_predictions(x, start, stop, sample_rate, order=order, context=context)
    if fwd is None and bwd is None:
        return np.zeros(gap)
    if fwd is None:
        return bwd
    if bwd is None:
        return fwd
    w = 0.5 + 0.5 * np.cos(np.pi * (np.arange(gap) + 0.5) / gap)  # 1 -> 0 across the gap
    return w * fwd + (1.0 - w) * bwd


def prediction_agreement(x: np.ndarray, start: int, stop: int, sample_rate: int) -> float:
    """How well the gap ``x[start:stop]`` is predicted from its surroundings, without the answer:
    the normalised correlation of the two :func:`side_predictions` across the gap.

    Steady tones and chords give 0.89-0.95 (both sides predict the same waveform); real speech
    and music, whose future the past does not fix, stayed at or below 0.6 over 213 training-clip
    gaps of 100-400 ms (speech 50 ms: at most 0.40; music 50 ms: 95th percentile 0.76, at most
    0.82). 0 when either side has too little context. A pure tone makes the AR filter marginal:
    a root just outside the unit circle overflows over a long gap, so the order is then halved
    (twice at most).
    """
    p = ar_order_for(stop - start, sample_rate)
    for order in (p, p // 2, p // 4):
        with np.errstate(over="ignore", invalid="ignore"):
            fwd, bwd = side_predictions(x, start, stop, sample_rate, order=order,
                                        context=_context(stop - start, p, sample_rate))
            if fwd is None or bwd is None:
                return 0.0
            norm = float(np.linalg.norm(fwd) * np.linalg.norm(bwd))
            value = float(np.dot(fwd, bwd) / norm) if norm > 0 else 0.0
        if np.isfinite(value) and np.isfinite(norm):
            return value
    return 0.0


def ar_fill(x: np.ndarray, start: int, stop: int, sample_rate: int, *,
            order: int | None = None, iterations: int = 3) -> np.ndarray:
    """The AR fill archtool uses for short gaps: Janssen (3 re-estimations) at :func:`ar_order_for`.

    Returns the gap ``(stop - start,)`` float64. (Mixing in the bidirectional
    prediction where LSAR loses energy was tried and scored lower SNR on held-out
    speech and music at 10-50 ms, so it is not used here.)
    """
    return janssen_interpolate(x, start, stop, sample_rate, order=order, iterations=iterations)
