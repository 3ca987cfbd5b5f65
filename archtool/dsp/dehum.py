"""Hum removal by tracking and subtracting each harmonic (torch; CPU or GPU).

For each harmonic ``k f0`` the signal is demodulated (multiplied by ``exp(-j 2 pi k f0 t)``)
and low-passed with three cascaded moving averages (a zero-phase, finite, B-spline
kernel, ``smooth_s`` long per box). That gives the harmonic's slowly varying complex
amplitude ``A_k(t)``: slow drift of frequency, level and phase is followed because the
pass band is a few Hz wide. The hum estimate ``2 Re(A_k(t) exp(j 2 pi k f0 t))`` is
subtracted. As an operation this is a linear, time-invariant, zero-phase band-stop
(demodulation and remodulation share the time origin) with a short symmetric kernel:
little ringing. Chunked runs give the same bits as whole-file runs once the context
covers the kernel: phases, the decimation phase, the gate's grid and its interpolation
weights follow the file's sample grid; moving sums are exact fixed-point integer sums;
complex values are carried as real pairs and harmonics are summed in a fixed order, so
no rounding depends on where a sample sits in its chunk.

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

# Complex values per harmonic batch (harmonics x channels x decimated samples): bounds the
# temporaries of one call.
GROUP_VALUES = 1_000_000


def hum_context_s(smooth_s: float, gate_s: float) -> float:
    """Context (seconds per side) that makes chunked processing match whole-file runs."""
    return 1.5 * smooth_s + 0.5 * gate_s + 0.1


# Fixed-point scale of the moving sums: integer cumulative sums are exact, so a window's
# sum does not depend on where the chunk (and with it the running sum) starts. 2^-30 is
# about -180 dB re full scale; int64 leaves room for 2^28 samples at |value| <= 16.
_FIXED = float(2 ** 30)


def _smooth(z: torch.Tensor, box: int) -> torch.Tensor:
    """Centered moving average of odd length ``box`` along the last axis (zeros outside).

    Computed exactly on a fixed-point grid (int64 cumulative sums; O(N) whatever the
    length), so every output sample depends only on the samples in its window, not on
    its position in the chunk: chunked and whole-file runs give the same bits.
    """
    if box <= 1:
        return z
    return (_box_sums(_to_fixed(z), box).to(torch.float64) * (1.0 / (_FIXED * box))).to(z.dtype)


def _smooth3(z: torch.Tensor, box: int) -> torch.Tensor:
    """Three cascaded :func:`_smooth` passes (a B-spline kernel), kept in fixed point
    between the passes (each average rounded to the nearest grid step)."""
    if box <= 1:
        return z
    q = _to_fixed(z)
    for _ in range(2):
        q = torch.div(_box_sums(q, box) + box // 2, box, rounding_mode="floor")
    return (_box_sums(q, box).to(torch.float64) * (1.0 / (_FIXED * box))).to(z.dtype)


def _to_fixed(z: torch.Tensor) -> torch.Tensor:
    return torch.round(z.to(torch.float64) * _FIXED).to(torch.int64)


def _box_sums(q: torch.Tensor, box: int) -> torch.Tensor:
    """Sums of ``box`` (odd) consecutive int64 values centred on each sample (zeros outside)."""
    h = box // 2
    c = torch.cumsum(F.pad(q, (h + 1, h)), dim=-1)  # c[i] = sum of the padded q before i
    return c[..., box:] - c[..., :-box]


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


def _lerp_weights(n: int, first: int, every: int, count: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lo, hi, t)``: indices ``0..n-1`` as positions between the points ``first + j * every``
    (``j < count``), clamped to the ends. Integer arithmetic, so a sample gets the same
    weight wherever the chunk starts (the points lie on the file's grid)."""
    r = torch.arange(n, device=device) - first
    lo = torch.div(r, every, rounding_mode="floor")
    t = (r - lo * every).to(torch.float32) / every
    t = torch.where((lo < 0) | (lo >= count - 1), torch.zeros_like(t), t)
    lo = lo.clamp(0, max(count - 1, 0))
    return lo, (lo + 1).clamp(max=max(count - 1, 0)), t


def _coarse_to_grid(v: torch.Tensor, n: int, first: int, every: int) -> torch.Tensor:
    """Linear interpolation of values at indices ``first + j * every`` to indices ``0..n-1``."""
    nc = v.shape[-1]
    if nc == 1:
        return v.expand(*v.shape[:-1], n)
    lo, hi, t = _lerp_weights(n, first, every, nc, v.device)
    return v[..., lo] * (1 - t) + v[..., hi] * t


def _bspline_kernel(box: int) -> np.ndarray:
    """Three cascaded moving averages of odd length ``box`` as one kernel (length 3 box - 2)."""
    k = np.ones(box) / box
    return np.convolve(np.convolve(k, k), k)


def _envelopes_at(z0: torch.Tensor, freqs: torch.Tensor, pos: torch.Tensor, box: int,
                  rate: float) -> torch.Tensor:
    """|three-box-smoothed demodulation| of ``z0`` ``(C, M)`` at ``freqs`` ``(Q,)`` Hz, only at
    the sample indices ``pos`` ``(P,)``: windowed DFTs instead of full-rate smoothing.
    Equals the full-rate envelope away from the ends. Returns ``(Q, C, P)``.

    Each value is an elementwise product summed along its own window (not a matrix
    product, whose blocking, and so rounding, depends on how many positions there are).
    """
    C, M = z0.shape
    kern = torch.from_numpy(_bspline_kernel(box)).to(z0.device)
    R = (kern.shape[0] - 1) // 2
    idx = pos[:, None] + torch.arange(-R, R + 1, device=z0.device)[None, :]  # (P, 2R+1)
    inside = (idx >= 0) & (idx < M)
    frames = torch.where(inside, z0[:, idx.clamp(0, M - 1)], torch.zeros((), dtype=z0.dtype, device=z0.device))
    r = torch.arange(-R, R + 1, device=z0.device, dtype=torch.float64)
    out = []
    for f in freqs.to(torch.float64):
        ang = -2 * math.pi * torch.remainder(r * f / rate, 1.0)
        re = (frames * (kern * torch.cos(ang)).to(z0.dtype)).sum(dim=-1)  # (C, P)
        im = (frames * (kern * torch.sin(ang)).to(z0.dtype)).sum(dim=-1)
        out.append(torch.sqrt(re * re + im * im))
    return torch.stack(out)


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
    del xd
    base = (offset + i0) // D  # index of z0[0] on the file's decimated grid
    box = max(1, int(round(smooth_s * rate)) | 1)
    step = max(1, int(round(0.01 * rate)))
    gate_w = max(1, int(round(gate_s * rate / step)) | 1)
    cbox = max(1, int(round(0.2 * rate)) | 1)
    # The gate is evaluated every `step` decimated samples on the file's absolute grid
    # (not the chunk's), then interpolated back, so chunks and whole files agree.
    j0 = (-base) % step
    L = len(range(j0, M, step))
    # The 1 s sliding statistics use every 5th gate step of the absolute grid.
    every = 5
    first = (-((base + j0) // step)) % every
    lo, hi, frac = _lerp_weights(M, j0, step, L, dev)
    hum = torch.zeros_like(z0)
    wc = max(1, (gate_w // every) | 1)
    pos = j0 + step * torch.arange(first, L, every, device=dev)  # decimated indices of the coarse grid
    if L == 0 or pos.numel() == 0:
        return x.clone()
    # Absolute time of the decimated samples: each phase is a function of the sample's
    # place in the file only, so chunks compute identical phasors.
    m = base + torch.arange(M, device=dev, dtype=torch.float64)
    group = max(1, int(GROUP_VALUES // max(4 * C * M, 1)))  # harmonics per batch (bounds memory)
    for g0 in range(0, len(ks), group):
        hk = torch.tensor(ks[g0:g0 + group], device=dev, dtype=torch.float64)
        H = hk.shape[0]
        # Phases wrapped in float64 (cycles mod 1), then float32 phasors exp(-j 2 pi k f0 t).
        ang = 2 * math.pi * torch.remainder((hk * f0)[:, None] * m / rate, 1.0)
        cos, sin = torch.cos(ang).to(torch.float32)[:, None, :], torch.sin(ang).to(torch.float32)[:, None, :]
        del ang
        # Complex values as (real, imaginary) pairs of real tensors: real arithmetic rounds
        # the same wherever a sample sits in the chunk (complex kernels do not, at the ends
        # of their vector loops).
        ri = _smooth3(torch.stack([cos * z0, -sin * z0]), box)  # (2, H, C, M)
        a_re, a_im = ri[0], ri[1]  # each harmonic's slowly varying amplitude
        env0_full = torch.sqrt(a_re * a_re + a_im * a_im)
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
        sm = _smooth(torch.stack([a_re, a_im, env0_full]), cbox)[..., j0::step]
        coh = torch.sqrt(sm[0] * sm[0] + sm[1] * sm[1]) / (sm[2] + 1e-12)
        del sm, env0_full
        gate = gate * ((coh - 0.7) / 0.25).clamp(0.0, 1.0)
        gate = gate * ((ratio - 0.5) / 0.3).clamp(0.0, 1.0)
        limit = (cap * med_h / (env0 + 1e-12)).clamp(max=1.0)
        v = gate * limit  # (H, C, L)
        gi = v[..., lo] * (1 - frac) + v[..., hi] * frac  # (H, C, M)
        # 2 Re(A_k gi exp(+j 2 pi k f0 t)), added harmonic by harmonic in a fixed order
        # (the grouping depends on the chunk's length; the sum must not).
        part = 2 * gi * (a_re * cos - a_im * sin)
        for h in range(H):
            hum += part[h]
        del ri, a_re, a_im, gi, part, cos, sin
    hum_full = resample_poly(hum.cpu().double().numpy(), D, 1, axis=1)[:, : N - i0] if D > 1 else hum.cpu().double().numpy()
    # xn is already a private float64 copy unless x was float64 on the CPU.
    out = xn.copy() if (x.device.type == "cpu" and x.dtype == torch.float64) else xn
    out[:, i0 : i0 + hum_full.shape[1]] -= hum_full
    return torch.from_numpy(out).to(device=dev, dtype=x.dtype)
