"""Autoregressive (AR) models: estimation, residuals and least-squares AR interpolation.

Conventions: an AR(p) model of a 1-D signal ``x`` is

    x[n] = sum_{k=1..p} a[k-1] * x[n-k] + e[n],

with ``a`` of shape ``(p,)`` and ``e`` white with variance ``sigma2``. The prediction-error
filter is ``b = [1, -a[0], ..., -a[p-1]]``.

Least-squares AR interpolation (LSAR, Godsill & Rayner, *Digital Audio Restoration*, 1998,
ch. 5) replaces the samples flagged ``missing`` by the values that minimise the energy of
the prediction error ``sum_n e[n]^2`` given the known samples. Missing samples more than
``p`` samples apart do not interact, so each cluster of runs is solved on its own with a
small dense system (``m x m`` for ``m`` missing samples of the cluster).

All functions are pure: they take numpy arrays, return new arrays, and never modify
their inputs.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_toeplitz

__all__ = [
    "ar_estimate",
    "ar_residual",
    "ar_interpolate",
    "missing_runs",
]


def _autocorr(x: np.ndarray, maxlag: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Biased autocorrelation r[0..maxlag] of ``x``; with ``valid`` only pairs of valid samples count."""
    n = x.shape[0]
    nfft = 1 << int(np.ceil(np.log2(max(2 * n - 1, 2))))
    if valid is None:
        X = np.fft.rfft(x, nfft)
        r = np.fft.irfft(X * np.conj(X), nfft)[: maxlag + 1]
        return r / max(n, 1)
    xv = np.where(valid, x, 0.0)
    X = np.fft.rfft(xv, nfft)
    r = np.fft.irfft(X * np.conj(X), nfft)[: maxlag + 1]
    # Biased normalisation by the number of valid samples keeps the Toeplitz matrix
    # positive definite.
    return r / max(float(np.count_nonzero(valid)), 1.0)


def ar_estimate(x: np.ndarray, order: int, *, valid: np.ndarray | None = None,
                window: bool = True) -> tuple[np.ndarray, float]:
    """Estimate AR(``order``) coefficients by the autocorrelation (Yule-Walker) method.

    Args:
        x: 1-D signal, shape ``(n,)``.
        order: model order ``p`` (``n`` should be several times ``p``).
        valid: optional boolean mask, shape ``(n,)``; samples where it is False are
            ignored (e.g. samples already known to be corrupted).
        window: apply a Hann window before estimation (reduces edge bias; ignored when
            ``valid`` is given).

    Returns:
        ``(a, sigma2)``: coefficients, shape ``(order,)``, and the prediction-error variance
        (in the units of ``x`` squared). A silent or too-short input gives zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"ar_estimate expects a 1-D signal, got shape {x.shape}")
    order = int(order)
    if order < 1:
        raise ValueError("AR order must be >= 1")
    n = x.shape[0]
    if n <= order + 1:
        return np.zeros(order), float(np.mean(x**2)) if n else 0.0
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        r = _autocorr(x, order, valid)
    else:
        xw = x * np.hanning(n) if window else x
        r = _autocorr(xw, order)
        if window:
            r = r / max(np.mean(np.hanning(n) ** 2), 1e-12)
    if r[0] <= 1e-20:
        return np.zeros(order), 0.0
    # A tiny white-noise floor keeps the system well conditioned (-100 dB re r[0]).
    r = r.copy()
    r[0] *= 1.0 + 1e-10
    r[0] += 1e-12
    try:
        a = solve_toeplitz(r[:order], r[1 : order + 1])
    except np.linalg.LinAlgError:
        return np.zeros(order), float(r[0])
    sigma2 = float(max(r[0] - np.dot(a, r[1 : order + 1]), 1e-20))
    if not np.all(np.isfinite(a)):
        return np.zeros(order), float(r[0])
    return a, sigma2


def ar_residual(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Prediction error ``e[n] = x[n] - sum_k a[k-1] x[n-k]``, shape like ``x``.

    The first ``p`` samples use zero history (so they are not meaningful as residuals).
    """
    from scipy.signal import lfilter

    x = np.asarray(x, dtype=np.float64)
    b = np.concatenate(([1.0], -np.asarray(a, dtype=np.float64)))
    return lfilter(b, [1.0], x)


def missing_runs(mask: np.ndarray) -> np.ndarray:
    """Runs of True in a boolean mask, as an ``(r, 2)`` int array of ``[start, stop)``."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if m.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    d = np.diff(np.concatenate(([0], m, [0])))
    starts = np.flatnonzero(d == 1)
    stops = np.flatnonzero(d == -1)
    return np.stack([starts, stops], axis=1).astype(np.int64)


def _clusters(runs: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Group runs whose separation is <= ``gap`` into (first_run, last_run+1) index ranges."""
    groups: list[tuple[int, int]] = []
    if len(runs) == 0:
        return groups
    first = 0
    for i in range(1, len(runs)):
        if runs[i, 0] - runs[i - 1, 1] > gap:
            groups.append((first, i))
            first = i
    groups.append((first, len(runs)))
    return groups


def _solve_segment(seg: np.ndarray, miss: np.ndarray, b: np.ndarray, ridge: float = 1e-9) -> np.ndarray:
    """LSAR on one segment: returns the values of the missing samples (indices ``miss``).

    Builds the prediction-error matrix ``A`` (rows n = p..L-1, ``A[n, n-k] = b[k]``) and
    solves ``(A_u^T A_u) x_u = -A_u^T A_k x_k`` with a tiny ridge for stability.
    """
    p = b.shape[0] - 1
    L = seg.shape[0]
    rows = L - p
    A = np.zeros((rows, L))
    idx = np.arange(rows)
    for k in range(p + 1):
        A[idx, idx + p - k] = b[k]
    known = np.ones(L, dtype=bool)
    known[miss] = False
    Au = A[:, miss]
    Ak = A[:, known]
    M = Au.T @ Au
    rhs = -Au.T @ (Ak @ seg[known])
    M[np.diag_indices_from(M)] += ridge * (np.trace(M) / max(M.shape[0], 1) + 1e-12)
    return np.linalg.solve(M, rhs)


def _solve_interior(x: np.ndarray, pos: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """LSAR for missing positions ``pos`` that lie at least ``p`` samples from both ends.

    Uses ``(A^T A)[i, j] = rb[|i - j|]`` (the autocorrelation of the prediction-error
    filter), which is exact away from the signal's ends.
    """
    p = rb.shape[0] - 1
    d = np.abs(pos[:, None] - pos[None, :])
    M = np.where(d <= p, rb[np.minimum(d, p)], 0.0)
    lo, hi = pos[0] - p, pos[-1] + p + 1
    span = np.arange(lo, hi)
    known = np.ones(span.shape[0], dtype=bool)
    known[pos - lo] = False
    kpos = span[known]
    dk = np.abs(pos[:, None] - kpos[None, :])
    C = np.where(dk <= p, rb[np.minimum(dk, p)], 0.0)
    rhs = -C @ x[kpos]
    M[np.diag_indices_from(M)] += 1e-9 * (rb[0] + 1e-12)
    return np.linalg.solve(M, rhs)


def ar_interpolate(x: np.ndarray, missing: np.ndarray, order: int = 32, *,
                   coeffs: np.ndarray | None = None, context: int | None = None,
                   block_starts: np.ndarray | None = None) -> np.ndarray:
    """Fill the samples flagged ``missing`` by least-squares AR interpolation (LSAR).

    Args:
        x: 1-D signal, shape ``(n,)`` (any float dtype; the values at missing samples are
            ignored).
        missing: boolean mask, shape ``(n,)``; True marks samples to reconstruct.
        order: AR model order ``p`` (e.g. 16-40 at 44.1 kHz; a model of order p needs a
            few times p known samples around each gap).
        coeffs: AR coefficients, shape ``(p,)``, to use for every gap, or ``(F, p)``: one
            model per block, block ``f`` starting at sample ``block_starts[f]`` (a cluster
            of gaps uses the block its first sample falls in). When None, a local model is
            estimated for each cluster of gaps from the known samples within ``context``
            samples on each side.
        context: samples of known signal used on each side of a cluster for estimation
            (default ``max(8 * order, 2 * cluster length, 512)``).
        block_starts: sorted ``(F,)`` block start indices for 2-D ``coeffs``.

    Returns:
        A new array with the dtype of ``x``, equal to ``x`` at known samples. Gaps longer
        than a few milliseconds decay towards the model's mean prediction (LSAR's known
        limit); use it for clicks and short dropouts.
    """
    x_in = np.asarray(x)
    out_dtype = x_in.dtype if np.issubdtype(x_in.dtype, np.floating) else np.float64
    xs = x_in.astype(np.float64, copy=True)
    missing = np.asarray(missing, dtype=bool)
    if xs.ndim != 1 or missing.shape != xs.shape:
        raise ValueError(f"ar_interpolate expects 1-D x and mask of equal shape, got {xs.shape} and {missing.shape}")
    n = xs.shape[0]
    if not missing.any():
        return xs.astype(out_dtype)
    if missing.all():
        raise ValueError("ar_interpolate: every sample is missing; nothing to interpolate from")
    xs[missing] = 0.0
    if coeffs is not None:
        coeffs = np.asarray(coeffs, dtype=np.float64)
        order = coeffs.shape[-1]
        if coeffs.ndim == 2:
            if block_starts is None or len(block_starts) != coeffs.shape[0]:
                raise ValueError("2-D coeffs need block_starts of matching length")
            block_starts = np.asarray(block_starts)
    order = int(order)
    runs = missing_runs(missing)
    for g0, g1 in _clusters(runs, order):
        start, stop = int(runs[g0, 0]), int(runs[g1 - 1, 1])
        span = stop - start
        if coeffs is None:
            ctx = int(context) if context is not None else max(8 * order, 2 * span, 512)
            lo, hi = max(0, start - ctx), min(n, stop + ctx)
            valid = ~missing[lo:hi]
            p_eff = min(order, max(1, int(valid.sum()) // 4))
            a, _ = ar_estimate(xs[lo:hi], p_eff, valid=valid)
        elif coeffs.ndim == 2:
            f = int(np.clip(np.searchsorted(block_starts, start, side="right") - 1, 0, coeffs.shape[0] - 1))
            a = coeffs[f]
        else:
            a = coeffs
        p = a.shape[0]
        b = np.concatenate(([1.0], -a))
        pos = np.arange(start, stop)[missing[start:stop]]
        if pos[0] >= p and pos[-1] < n - p:
            rb = np.correlate(b, b, mode="full")[p:]
            vals = _solve_interior(xs, pos, rb)
        else:
            lo, hi = max(0, start - 2 * p), min(n, stop + 2 * p)
            if hi - lo <= p:
                continue
            # At the signal's ends the system is only partly determined (extrapolation):
            # a stronger ridge keeps the fill bounded.
            vals = _solve_segment(xs[lo:hi], pos - lo, b, ridge=1e-2)
        xs[pos] = vals
    return xs.astype(out_dtype)


def levinson_batch(r: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Levinson-Durbin on many autocorrelation rows at once.

    Args:
        r: autocorrelations, shape ``(F, >= order + 1)``.
        order: AR order ``p``.

    Returns:
        ``(a, err)``: coefficients ``(F, p)`` (convention of :func:`ar_estimate`) and
        prediction-error variances ``(F,)``. Rows with ``r[:, 0] <= 0`` give zeros.
    """
    r = np.asarray(r, dtype=np.float64)
    F = r.shape[0]
    a = np.zeros((F, order))
    err = r[:, 0].copy()
    ok = err > 1e-20
    err = np.where(ok, err, 1.0)
    for i in range(order):
        acc = r[:, i + 1] - np.einsum("fj,fj->f", a[:, :i], r[:, i:0:-1]) if i else r[:, 1].copy()
        k = np.where(ok, acc / err, 0.0)
        k = np.clip(k, -0.9999, 0.9999)
        if i:
            a[:, :i] = a[:, :i] - k[:, None] * a[:, i - 1 :: -1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    a[~ok] = 0.0
    return a, np.where(ok, err, 0.0)


def ar_estimate_frames(frames: np.ndarray, order: int, valid: np.ndarray | None = None,
                       window: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """AR coefficients of many frames at once (autocorrelation method).

    Args:
        frames: shape ``(F, L)``.
        order: AR order ``p``.
        valid: optional ``(F, L)`` boolean mask of samples to use (others count as absent).
        window: taper each frame with a Hann window first.

    Returns:
        ``(a (F, p), sigma2 (F,))``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    F, L = frames.shape
    w = np.hanning(L) if window else np.ones(L)
    xv = frames * w
    if valid is not None:
        xv = np.where(valid, xv, 0.0)
        count = np.maximum((valid * w * w).sum(axis=1), 1e-9)
    else:
        count = np.full(F, max((w * w).sum(), 1e-9))
    nfft = 1 << int(np.ceil(np.log2(2 * L - 1)))
    X = np.fft.rfft(xv, nfft, axis=1)
    r = np.fft.irfft(X * np.conj(X), nfft, axis=1)[:, : order + 1] / count[:, None]
    r[:, 0] = r[:, 0] * (1.0 + 1e-9) + 1e-14
    return levinson_batch(r, order)
