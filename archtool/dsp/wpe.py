"""Dereverberation by weighted prediction error (WPE; Nakatani et al. 2010, Yoshioka &
Nakatani 2012) in the STFT domain, in torch (CPU or GPU).

In each frequency bin the late reverberation of frame ``t`` is predicted from frames
``t - delay - k`` (``k < taps``, all channels) by a filter ``G`` that minimises the
prediction error weighted by the inverse of the desired signal's power ``lambda_t``
(estimated from the previous iteration, averaged over channels). The prediction is
subtracted; the first ``delay`` frames (direct sound and early reflections) stay.

The filter is estimated per block of ``block_s`` seconds on the file's absolute frame
grid, from the statistics of that block and ``neighbours`` blocks on each side, so the
result at any frame depends only on audio within a bounded window: chunked runs equal
whole-file runs once the context covers it (see :func:`wpe_context_s`).
"""
from __future__ import annotations

import math

import torch

__all__ = ["wpe", "wpe_sizes", "wpe_context_s"]


def wpe_sizes(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop): about 32 ms frames with 75 % overlap."""
    n_fft = 1 << int(round(math.log2(max(0.032 * sample_rate, 64))))
    return n_fft, n_fft // 4


def wpe_context_s(block_s: float, neighbours: int, taps: int, delay: int, sample_rate: int = 16000) -> float:
    """Context (seconds per side) for exact chunking."""
    n_fft, hop = wpe_sizes(sample_rate)
    return (neighbours + 1) * block_s + (taps + delay + 4) * hop / sample_rate + n_fft / sample_rate


def wpe(x: torch.Tensor, sample_rate: int, *, taps: int = 10, delay: int = 3, iterations: int = 2,
        block_s: float = 1.0, neighbours: int = 2, offset: int = 0, eps: float = 1e-8,
        rt60_s: float | None = None) -> torch.Tensor:
    """Dereverberate ``x`` ``(C, N)``; returns the same shape, dtype and device.

    With ``rt60_s``, what is removed from each bin is bounded by the late reverberation an
    exponentially decaying room of that RT60 can leave (Lebart, Boucher & Denbigh 2001):
    ``|removed(t)|^2 <= exp(-2 delta T) |Y(t - delay)|^2`` with ``delta = 3 ln 10 / rt60_s``
    and ``T`` the prediction delay, so sustained notes (well predicted by WPE, but not
    reverberation) lose at most that fraction.
    """
    C, N = x.shape
    if N == 0:
        return x.clone()
    dev = x.device
    n_fft, hop = wpe_sizes(sample_rate)
    p = offset % hop
    xp = torch.nn.functional.pad(x.to(torch.float32), (p, (-(p + N)) % hop))
    win = torch.hann_window(n_fft, periodic=True, device=dev)
    Y = torch.stft(xp, n_fft, hop, window=win, center=True, pad_mode="constant", return_complex=True)
    Y = Y.permute(1, 2, 0).to(torch.complex128)  # (F, T, C)
    Fq, T, _ = Y.shape
    K = taps
    D = C * K
    # Delayed, stacked past frames: Xt[f, t] = [Y[t - delay - k] for k < K] (zeros before 0).
    Yp = torch.nn.functional.pad(Y, (0, 0, delay + K - 1, 0))
    Xt = torch.stack([Yp[:, K - 1 - k : K - 1 - k + T] for k in range(K)], dim=2).reshape(Fq, T, D)
    # Frame t's block on the absolute grid (frame 0 of this call is absolute frame (offset - p) / hop).
    f0 = (offset - p) // hop
    bf = max(1, int(round(block_s * sample_rate / hop)))
    blk = torch.div(torch.arange(T, device=dev) + f0, bf, rounding_mode="floor")
    blk = blk - blk[0]
    nb = int(blk[-1].item()) + 1
    d = Y
    for _ in range(max(1, iterations)):
        lam = (d.real**2 + d.imag**2).mean(dim=2).clamp_min(eps)  # (F, T)
        w = 1.0 / lam
        # Per-block sums of weighted statistics, then sums over neighbouring blocks.
        Rt = torch.einsum("ft,ftd,fte->ftde", w.to(Xt.dtype), Xt, Xt.conj())
        Pt = torch.einsum("ft,ftd,ftc->ftdc", w.to(Xt.dtype), Xt, Y.conj())
        R = torch.zeros(Fq, nb, D, D, dtype=Xt.dtype, device=dev).index_add_(1, blk, Rt)
        P = torch.zeros(Fq, nb, D, C, dtype=Xt.dtype, device=dev).index_add_(1, blk, Pt)
        Rc = torch.cumsum(torch.nn.functional.pad(R, (0, 0, 0, 0, 1, 0)), dim=1)
        Pc = torch.cumsum(torch.nn.functional.pad(P, (0, 0, 0, 0, 1, 0)), dim=1)
        b = torch.arange(nb, device=dev)
        lo, hi = (b - neighbours).clamp(0, nb), (b + neighbours + 1).clamp(0, nb)
        Rw = Rc[:, hi] - Rc[:, lo]
        Pw = Pc[:, hi] - Pc[:, lo]
        tr = torch.diagonal(Rw, dim1=-2, dim2=-1).real.sum(-1).clamp_min(eps)
        Rw = Rw + (1e-6 * tr / D)[..., None, None] * torch.eye(D, dtype=Rw.dtype, device=dev)
        G = torch.linalg.solve(Rw, Pw)  # (F, nb, D, C)
        Gt = G[:, blk]  # (F, T, D, C)
        d = Y - torch.einsum("ftdc,ftd->ftc", Gt.conj(), Xt)
    if rt60_s is not None and rt60_s > 0:
        delta = 3.0 * math.log(10.0) / float(rt60_s)
        decay = math.exp(-2.0 * delta * delay * hop / sample_rate)
        past = torch.nn.functional.pad(Y, (0, 0, delay, 0))[:, :T]  # Y(t - delay)
        removed = Y - d
        bound = decay * (past.real**2 + past.imag**2)
        rp = (removed.real**2 + removed.imag**2).clamp_min(1e-30)
        d = Y - removed * torch.sqrt(bound / rp).clamp(max=1.0)
    Z = d.permute(2, 0, 1).to(torch.complex64)
    out = torch.istft(Z, n_fft, hop, window=win, center=True, length=xp.shape[-1])
    return out[:, p : p + N].to(x.dtype)
