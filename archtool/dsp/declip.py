"""Declipping by consistent sparse reconstruction: frame-wise A-SPADE (torch, CPU or GPU).

Clipped samples are those within ``tol`` of the clip level, in runs of at least
``min_run`` samples (single peak samples are left alone; flat runs longer than
``max_run_ms`` are digital silence or a stuck signal, not clipping). They are rebuilt with
the analysis-sparsity SPADE algorithm (A-SPADE; Kitić, Bertin & Gribonval 2015, in the
form evaluated by Záviška, Rajmic, Ozerov & Rencker 2021): on Hann-windowed frames that
contain clipped samples, it alternates

* hard thresholding of the frame's oversampled DFT coefficients (the ``k`` largest kept,
  ``k`` growing as the iterations go on), and
* projection onto the consistent set: reliable samples equal the observation, clipped
  samples lie at or beyond the (windowed) clip level on their own side,

with an ADMM dual variable, until the frame's sparse coefficients and its consistent
waveform agree within ``eps`` (or after ``max_iter`` iterations). Frames are overlap-added
(Hann at 75 % overlap sums to a constant), so the output is consistent too: every rebuilt
sample lies beyond the clip level on its clipped side, and unclipped samples are returned
unchanged.

Frames sit on the file's absolute grid (``offset``) and each depends only on its own
samples, so chunked runs equal whole-file runs once the context covers one frame.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from archtool.dsp.ar import missing_runs

__all__ = ["clipped_mask", "declip", "declip_frame_length", "aspade_frames"]


def clipped_mask(x: np.ndarray, level: float, tol: float = 1e-3, min_run: int = 2) -> np.ndarray:
    """Samples of the 1-D ``x`` at the clip level (|x| >= level * (1 - tol)) in runs of >= ``min_run``."""
    m = np.abs(x) >= level * (1.0 - tol)
    if min_run > 1 and m.any():
        for r0, r1 in missing_runs(m):
            if r1 - r0 < min_run:
                m[r0:r1] = False
    return m


def declip_frame_length(sample_rate: int) -> int:
    """Frame length in samples: the power of two nearest 46 ms (2048 at 44.1 kHz)."""
    return 1 << int(round(math.log2(max(0.046 * sample_rate, 64))))


def aspade_frames(y: torch.Tensor, clipped: torch.Tensor, *, eps: float, max_iter: int = 150,
                  grow: float = 1.03, redundancy: int = 2) -> torch.Tensor:
    """A-SPADE on a batch of windowed frames.

    Args:
        y: observed windowed frames ``(F, N)`` (real, float32 or float64).
        clipped: boolean ``(F, N)``: samples whose true value lies beyond ``y`` (away from
            zero, on the side of ``y``'s sign); the others are reliable.
        eps: stopping tolerance on the distance between the consistent frame and its
            sparse approximation (L2, units of ``y``).
        max_iter: iteration cap.
        grow: sparsity schedule ``k <- max(k + 1, ceil(grow * k))`` per iteration.
        redundancy: DFT oversampling (frame analysed with a ``redundancy * N``-point FFT,
            a Parseval tight frame up to the factor folded into the norms below).

    Returns:
        Consistent frames ``(F, N)``, same dtype and device as ``y``.
    """
    F, N = y.shape
    out = y.clone()
    if F == 0:
        return out
    M = redundancy * N
    K = M // 2 + 1
    dev = y.device
    # Weights for the L2 norm of a real signal's half spectrum: ||x||^2 = sum w |X|^2 / M.
    w = torch.full((K,), 2.0, dtype=y.dtype, device=dev)
    w[0] = 1.0
    if M % 2 == 0:
        w[-1] = 1.0
    pos = clipped & (y > 0)
    neg = clipped & (y < 0)
    rel = ~(pos | neg)
    rows = torch.arange(F, device=dev)  # which original frame each active row is
    yy, x = y, y.clone()
    Ax = torch.fft.rfft(x, M)
    u = torch.zeros_like(Ax)
    k = 1  # every frame follows the same sparsity schedule
    for _ in range(int(max_iter)):
        v = Ax + u
        mag = v.abs()
        th = mag.topk(min(k, K), dim=1, sorted=False).values.min(dim=1, keepdim=True).values
        z = torch.where(mag >= th, v, torch.zeros_like(v))
        xs = torch.fft.irfft(z - u, M)[:, :N]
        xs = torch.where(rel, yy, xs)
        xs = torch.where(pos, torch.maximum(xs, yy), xs)
        x = torch.where(neg, torch.minimum(xs, yy), xs)
        Ax = torch.fft.rfft(x, M)
        d = Ax - z
        err = torch.sqrt((w * (d.real**2 + d.imag**2)).sum(dim=1) / M)
        u = u + d
        k = max(k + 1, int(math.ceil(k * grow)))
        done = err <= eps
        if bool(done.any()):
            out[rows[done]] = x[done]
            keep = ~done
            if not bool(keep.any()):
                return out
            rows, yy, x, Ax, u = rows[keep], yy[keep], x[keep], Ax[keep], u[keep]
            pos, neg, rel = pos[keep], neg[keep], rel[keep]
    out[rows] = x
    return out


def declip(audio: torch.Tensor, clip_level: float | list[float] | None, sample_rate: int, *,
           max_iter: int = 150, eps_rel: float = 0.1, tol: float = 1e-3, min_run: int = 2,
           max_run_ms: float = 10.0, offset: int = 0, batch_frames: int = 512) -> torch.Tensor:
    """Declip ``audio`` ``(C, N)`` (float tensor on any device).

    Args:
        clip_level: positive clip level (one or per channel), e.g. the analysis'
            ``clip_level``; None uses each channel's peak.
        sample_rate: Hz (sets the frame length, :func:`declip_frame_length`).
        max_iter: A-SPADE iteration cap per frame.
        eps_rel: stopping tolerance relative to the clip level.
        tol, min_run: clipped-sample detection (see :func:`clipped_mask`).
        max_run_ms: longer flat runs are left alone.
        offset: absolute index of ``audio[:, 0]`` in the file (frame grid).
        batch_frames: frames solved together (bounds memory).

    Returns:
        Tensor of the same shape, dtype and device; unclipped samples unchanged.
    """
    C, n = audio.shape
    out = audio.clone()
    if n == 0:
        return out
    dev = audio.device
    xn = audio.detach().to("cpu", torch.float64).numpy()
    levels = np.broadcast_to(np.asarray(clip_level if clip_level is not None else np.nan, dtype=float), (C,))
    win = declip_frame_length(sample_rate)
    hop = win // 4
    window = np.hanning(win + 1)[:win]  # periodic Hann: sums to 2 at 75 % overlap
    max_run = int(max_run_ms * 1e-3 * sample_rate)
    first = -(offset % hop) - (win - hop)
    starts = np.arange(first, n, hop)
    for c in range(C):
        lev = float(levels[c])
        if not np.isfinite(lev) or lev <= 0:
            lev = float(np.max(np.abs(xn[c])))
        if lev <= 0:
            continue
        miss = clipped_mask(xn[c], lev, tol, min_run)
        for r0, r1 in missing_runs(miss):
            if r1 - r0 > max_run:
                miss[r0:r1] = False
        if not miss.any():
            continue
        # Frames touching a clipped sample (on the absolute grid).
        cs = np.cumsum(np.concatenate(([0], miss.astype(np.int64))))
        a0 = np.clip(starts, 0, n)
        a1 = np.clip(starts + win, 0, n)
        need = starts[(cs[a1] - cs[a0]) > 0]
        idx = need[:, None] + np.arange(win)[None, :]
        inside = (idx >= 0) & (idx < n)
        ic = np.clip(idx, 0, n - 1)
        fr = np.where(inside, xn[c][ic], 0.0) * window
        mk = inside & miss[ic]
        rec = np.empty_like(fr)
        for b0 in range(0, fr.shape[0], batch_frames):
            yb = torch.from_numpy(fr[b0:b0 + batch_frames]).to(dev, torch.float32)
            mb = torch.from_numpy(mk[b0:b0 + batch_frames]).to(dev)
            rec[b0:b0 + batch_frames] = aspade_frames(yb, mb, eps=eps_rel * lev, max_iter=max_iter).double().cpu().numpy()
        # Overlap-add of the rebuilt frames, divided by the window sum (2 at 75 % overlap).
        y = np.bincount(ic[inside], weights=rec[inside], minlength=n) / (window.sum() / hop)
        vals = y[miss]
        # Consistency holds frame by frame; float32 rounding could leave a hair inside.
        sgn = np.sign(xn[c][miss])
        vals = sgn * np.maximum(sgn * vals, lev)
        col = xn[c].copy()
        col[miss] = vals
        out[c] = torch.from_numpy(col).to(device=dev, dtype=audio.dtype)
    return out
