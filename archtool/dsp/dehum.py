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

import torch
import torch.nn.functional as F

__all__ = ["dehum", "hum_context_s"]


def hum_context_s(smooth_s: float, gate_s: float) -> float:
    """Context (seconds per side) that makes chunked processing match whole-file runs."""
    return 1.5 * smooth_s + 0.5 * gate_s + 0.1


def _smooth(z: torch.Tensor, box: int) -> torch.Tensor:
    """Centered moving average of odd length ``box`` along the last axis (zeros outside),
    by cumulative sums (exact, O(N) whatever the length)."""
    if box <= 1:
        return z
    N = z.shape[-1]
    c = torch.cumsum(F.pad(z, (1, 0)), dim=-1)  # c[i] = sum z[..., :i]
    idx = torch.arange(N, device=z.device)
    lo = (idx - box // 2).clamp(0, N)
    hi = (idx + box // 2 + 1).clamp(0, N)
    return (c[..., hi] - c[..., lo]) / box


def _sliding_median(z: torch.Tensor, width: int) -> torch.Tensor:
    """Sliding median of odd ``width`` along the last axis (edge-replicated)."""
    if width <= 1:
        return z
    pad = width // 2
    zp = F.pad(z.unsqueeze(1), (pad, pad), mode="replicate").squeeze(1)
    return zp.unfold(-1, width, 1).median(dim=-1).values


def _sliding_quantile_ratio(z: torch.Tensor, width: int) -> torch.Tensor:
    """Sliding ratio of the 20th to the 80th percentile along the last axis (edge-replicated)."""
    if width <= 1:
        return torch.ones_like(z)
    pad = width // 2
    win = F.pad(z.unsqueeze(1), (pad, pad), mode="replicate").squeeze(1).unfold(-1, width, 1)
    qs = torch.quantile(win, torch.tensor([0.2, 0.8], dtype=z.dtype, device=z.device), dim=-1)
    return qs[0] / (qs[1] + 1e-12)


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
    z0 = torch.from_numpy(xd).to(dev)
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
    grid = ((m - j0) / step).clamp(0, max(L - 1, 0))
    lo = grid.floor().long()
    hi = (lo + 1).clamp(max=max(L - 1, 0))
    frac = grid - lo
    hum = torch.zeros_like(z0)
    for k in ks:
        fk = k * f0
        freqs = torch.tensor([fk, fk - 0.5 * f0, fk + 0.5 * f0], device=dev, dtype=torch.float64)
        rot = torch.polar(torch.ones(3, M, device=dev, dtype=torch.float64),
                          -2 * math.pi * freqs[:, None] * m[None, :] / rate)
        z = (rot[:, None, :] * z0[None, :, :]).reshape(3 * C, M)
        a = torch.complex(_smooth(_smooth(_smooth(z.real, box), box), box),
                          _smooth(_smooth(_smooth(z.imag, box), box), box)).reshape(3, C, M)
        env_full = a.abs()
        env = env_full[..., j0::step]
        med_h = _sliding_median(env[0], gate_w)
        med_nb = torch.maximum(_sliding_median(env[1], gate_w), _sliding_median(env[2], gate_w))
        prom_db = 20 * torch.log10((med_h + 1e-12) / (med_nb + 1e-12))
        gate = ((prom_db - gate_db) / 6.0).clamp(0.0, 1.0)
        # Hum is a steady sinusoid: its track keeps its phase over ~0.2 s (coherence) and
        # its level over ~1 s (low/high quantile ratio); programme partials rarely do both.
        coh = (torch.complex(_smooth(a[0].real, cbox), _smooth(a[0].imag, cbox)).abs()
               / (_smooth(env_full[0], cbox) + 1e-12))[..., j0::step]
        gate = gate * ((coh - 0.7) / 0.25).clamp(0.0, 1.0)
        q = _sliding_quantile_ratio(env[0], gate_w)
        gate = gate * ((q - 0.5) / 0.3).clamp(0.0, 1.0)
        limit = (cap * med_h / (env[0] + 1e-12)).clamp(max=1.0)
        v = gate * limit
        g = v[..., lo] * (1 - frac) + v[..., hi] * frac if L > 0 else torch.zeros(C, M, dtype=v.dtype, device=dev)
        hum += 2 * (a[0] * g * rot[0].conj()).real
    hum_full = resample_poly(hum.cpu().numpy(), D, 1, axis=1)[:, : N - i0] if D > 1 else hum.cpu().numpy()
    out = xn.copy()
    out[:, i0 : i0 + hum_full.shape[1]] -= hum_full
    return torch.from_numpy(out).to(device=dev, dtype=x.dtype)
