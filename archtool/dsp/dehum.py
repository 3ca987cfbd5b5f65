"""Hum removal by tracking and subtracting each harmonic (torch; CPU or GPU).

For each harmonic ``k f0`` the signal is demodulated (multiplied by ``exp(-j 2 pi k f0 t)``)
and low-passed with three cascaded moving averages (a zero-phase, finite, B-spline
kernel, ``smooth_s`` long per box). That gives the harmonic's slowly varying complex
amplitude ``A_k(t)``: slow drift of frequency, level and phase is followed because the
pass band is a few Hz wide. The hum estimate ``2 Re(A_k(t) exp(j 2 pi k f0 t))`` is
subtracted. As an operation this is a linear, time-invariant, zero-phase band-stop
(demodulation and remodulation share the time origin, so the chunk's position in the
file does not matter) with a short symmetric kernel: little ringing, and chunked runs
match whole-file runs once the context covers the kernel.

A harmonic is only removed where it behaves like hum: it stands above its spectral
neighbourhood (the envelope at ``k f0`` against those at ``(k +- 1/2) f0`` over a sliding
``gate_s`` window; the removal fades in between ``gate_db`` and ``gate_db + 6`` dB of
prominence), keeps its phase over 0.2 s and its level over ``gate_s``. Its magnitude is capped at ``cap`` times the local median hum level, so a
loud musical note that happens to sit on a harmonic is not taken away with the hum.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["dehum", "hum_context_s"]


def hum_context_s(smooth_s: float, gate_s: float) -> float:
    """Context (seconds per side) that makes chunked processing match whole-file runs."""
    return 1.5 * smooth_s + 0.5 * gate_s + 0.1


def _smooth(z: torch.Tensor, box: int) -> torch.Tensor:
    """Centered moving average of odd length ``box`` along the last axis (zeros outside),
    by cumulative sums (exact, O(N) whatever the length; contiguous slices, no gathers)."""
    if box <= 1:
        return z
    h = box // 2
    c = torch.cumsum(F.pad(z, (h + 1, h)), dim=-1)  # c[i] = sum of the padded z before i
    return (c[..., box:] - c[..., :-box]) / box


def _window_stats(zc: torch.Tensor, wc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sliding median and 20th/80th-percentile ratio over odd ``wc`` samples along the last
    axis (edge-replicated)."""
    shape = zc.shape
    if wc <= 1:
        return zc, torch.ones_like(zc)
    pad = wc // 2
    win = F.pad(zc.reshape(-1, 1, shape[-1]), (pad, pad), mode="replicate").unfold(-1, wc, 1)
    srt = win.sort(dim=-1).values

    def q(frac: float) -> torch.Tensor:  # linear-interpolated quantile of the sorted windows
        r = frac * (wc - 1)
        k0 = int(np.floor(r))
        k1 = min(k0 + 1, wc - 1)
        return (srt[..., k0] * (1 - (r - k0)) + srt[..., k1] * (r - k0)).reshape(shape)

    return q(0.5), q(0.2) / (q(0.8) + 1e-12)


def _coarse_to_grid(v: torch.Tensor, n: int, first: int, every: int) -> torch.Tensor:
    """Linear interpolation of values at indices ``first + j * every`` to indices ``0..n-1``."""
    nc = v.shape[-1]
    if nc == 1:
        return v.expand(*v.shape[:-1], n)
    pos = (torch.arange(n, device=v.device, dtype=torch.float32) - first) / every
    j = pos.floor().long().clamp(0, nc - 2)
    t = (pos - j).clamp(0.0, 1.0)
    return v[..., j] * (1 - t) + v[..., j + 1] * t


def _bspline_kernel(box: int) -> np.ndarray:
    """Three cascaded moving averages of odd length ``box`` as one kernel (length 3 box - 2)."""
    k = np.ones(box) / box
    return np.convolve(np.convolve(k, k), k)


def _envelopes_at(z0: torch.Tensor, freqs: torch.Tensor, pos: torch.Tensor, box: int,
                  rate: float) -> torch.Tensor:
    """|three-box-smoothed demodulation| of ``z0`` ``(C, M)`` at ``freqs`` ``(Q,)`` Hz, only at
    the sample indices ``pos`` ``(P,)``: windowed DFTs (one matrix product) instead of
    full-rate smoothing. Equals the full-rate envelope away from the ends. Returns ``(Q, C, P)``."""
    C, M = z0.shape
    kern = torch.from_numpy(_bspline_kernel(box)).to(z0.device)
    R = (kern.shape[0] - 1) // 2
    idx = pos[:, None] + torch.arange(-R, R + 1, device=z0.device)[None, :]  # (P, 2R+1)
    inside = (idx >= 0) & (idx < M)
    frames = torch.where(inside, z0[:, idx.clamp(0, M - 1)], torch.zeros((), dtype=z0.dtype, device=z0.device))
    r = torch.arange(-R, R + 1, device=z0.device, dtype=torch.float64)
    cyc = torch.remainder(r[:, None] * freqs[None, :].to(torch.float64) / rate, 1.0)
    E = (kern[:, None] * torch.polar(torch.ones_like(cyc), -2 * math.pi * cyc)).to(torch.complex64)  # (2R+1, Q)
    out = torch.complex(frames @ E.real, frames @ E.imag).abs()  # (C, P, Q)
    return out.permute(2, 0, 1)


def dehum(x: torch.Tensor, sample_rate: int, f0: float, harmonics: list[int], *,
          smooth_s: float = 0.08, gate_s: float = 1.0, gate_db: float = 10.0, cap: float = 2.0,
          offset: int = 0) -> torch.Tensor:
    """Remove hum at ``f0`` and the listed ``harmonics`` (1 = fundamental) from ``x`` ``(C, N)``.

    The work happens at a decimated rate (about 3x the highest harmonic): the signal is
    low-passed and decimated (polyphase), the hum is estimated there and interpolated back
    to the full rate before it is subtracted. The decimation phase follows the absolute
    sample grid (``offset``: index of ``x[0]`` in the file), so chunks agree.

    Args:
        x: float tensor ``(channels, samples)`` on any device.
        sample_rate: Hz.
        f0: hum fundamental in Hz (e.g. 50.0 or 60.0, or the analysed value).
        harmonics: harmonic numbers to treat (those above 0.45 x Nyquist are skipped).
        smooth_s: length of each of the three moving averages (pass band about
            +-1/smooth_s Hz around each harmonic).
        gate_s: window of the prominence gate and of the level cap.
        gate_db: prominence (dB above the half-way neighbours) where removal starts (full
            removal 6 dB higher).
        cap: removal is limited to ``cap`` x the local median hum amplitude.
        offset: absolute index of ``x[0]``.

    Returns:
        The de-hummed signal, same shape, dtype and device.
    """
    from scipy.signal import resample_poly

    C, N = x.shape
    ks = [int(k) for k in harmonics if 0 < k * f0 < 0.45 * sample_rate]
    if N == 0 or not ks or f0 <= 0:
        return x.clone()
    fmax = (max(ks) + 0.5) * f0
    D = max(1, int(sample_rate // (3.0 * fmax)))
    i0 = (-offset) % D
    xn = x.detach().to("cpu", torch.float64).numpy()
    xd = resample_poly(xn[:, i0:], 1, D, axis=1) if D > 1 else xn[:, i0:].copy()
    rate = sample_rate / D
    M = xd.shape[1]
    if M < 8:
        return x.clone()
    dev = x.device
    z0 = torch.from_numpy(xd).to(dev, torch.float32)  # float32 suffices (-90 dB re the hum)
    # Absolute time of the decimated samples (the origin cancels; it only keeps chunks equal).
    m = torch.arange(M, device=dev, dtype=torch.float64)
    box = max(1, int(round(smooth_s * rate)) | 1)
    step = max(1, int(round(0.01 * rate)))
    gate_w = max(1, int(round(gate_s * rate / step)) | 1)
    cbox = max(1, int(round(0.2 * rate)) | 1)
    # The gate is evaluated every `step` decimated samples on the file's absolute grid
    # (not the chunk's), then interpolated back, so chunks and whole files agree.
    j0 = (-((offset + i0) // D)) % step
    L = len(range(j0, M, step))
    # The 1 s sliding statistics use every 5th gate step of the absolute grid.
    every = 5
    first = (-int(((offset + i0) // D + j0) // step)) % every
    grid = ((m - j0) / step).clamp(0, max(L - 1, 0))
    lo = grid.floor().long()
    hi = (lo + 1).clamp(max=max(L - 1, 0))
    frac = (grid - lo).to(torch.float32)
    hum = torch.zeros_like(z0)
    wc = max(1, (gate_w // every) | 1)
    pos = j0 + step * torch.arange(first, L, every, device=dev)  # decimated indices of the coarse grid
    if L == 0 or pos.numel() == 0:
        return x.clone()
    group = max(1, int(4_000_000 // max(4 * C * M, 1)))  # harmonics per batch (bounds memory)
    for g0 in range(0, len(ks), group):
        hk = torch.tensor(ks[g0:g0 + group], device=dev, dtype=torch.float64)
        H = hk.shape[0]
        # Phases wrapped in float64 (cycles mod 1), then float32 phasors.
        cyc = torch.remainder((hk * f0)[:, None] * m / rate, 1.0).to(torch.float32)
        rot = torch.polar(torch.ones_like(cyc), -2 * math.pi * cyc)  # (H, M)
        z = rot[:, None, :] * z0  # (H, C, M)
        ri = _smooth(_smooth(_smooth(torch.stack([z.real, z.imag]), box), box), box)
        a0 = torch.complex(ri[0], ri[1])  # (H, C, M): each harmonic's slowly varying amplitude
        env0_full = a0.abs()
        env0 = env0_full[..., j0::step]  # (H, C, L)
        # The half-way neighbours are only needed on the coarse grid of the 1 s statistics.
        nb = _envelopes_at(z0, torch.cat([(hk - 0.5) * f0, (hk + 0.5) * f0]), pos, box, rate)
        med_nb_c = _window_stats(nb, wc)[0].reshape(2, H, C, -1).amax(dim=0)
        med_h_c, ratio_c = _window_stats(env0[..., first::every], wc)
        med_h = _coarse_to_grid(med_h_c, L, first, every)
        med_nb = _coarse_to_grid(med_nb_c, L, first, every)
        ratio = _coarse_to_grid(ratio_c, L, first, every)
        prom_db = 20 * torch.log10((med_h + 1e-12) / (med_nb + 1e-12))
        gate = ((prom_db - gate_db) / 6.0).clamp(0.0, 1.0)
        # Hum is a steady sinusoid: its track keeps its phase over ~0.2 s (coherence) and
        # its level over ~1 s (low/high quantile ratio); programme partials rarely do both.
        sm = _smooth(torch.stack([a0.real, a0.imag, env0_full]), cbox)
        coh = (torch.complex(sm[0], sm[1]).abs() / (sm[2] + 1e-12))[..., j0::step]
        gate = gate * ((coh - 0.7) / 0.25).clamp(0.0, 1.0)
        gate = gate * ((ratio - 0.5) / 0.3).clamp(0.0, 1.0)
        limit = (cap * med_h / (env0 + 1e-12)).clamp(max=1.0)
        v = gate * limit  # (H, C, L)
        gi = v[..., lo] * (1 - frac) + v[..., hi] * frac
        hum += (2 * (a0 * gi * rot[:, None, :].conj()).real).sum(dim=0)
    hum_full = resample_poly(hum.cpu().double().numpy(), D, 1, axis=1)[:, : N - i0] if D > 1 else hum.cpu().double().numpy()
    out = xn.copy()
    out[:, i0 : i0 + hum_full.shape[1]] -= hum_full
    return torch.from_numpy(out).to(device=dev, dtype=x.dtype)
