"""Stationary-noise suppression in the STFT domain: MMSE log-spectral amplitude estimator
(Ephraim & Malah 1985) with the decision-directed a-priori SNR.

Per frame ``l`` and bin ``k`` with noisy power ``|Y|^2`` and noise power ``lambda``:
``gamma = |Y|^2 / lambda`` (a-posteriori SNR), ``xi = alpha * |A(l-1)|^2 / lambda +
(1 - alpha) * max(gamma - 1, 0)`` (decision-directed a-priori SNR), and the gain
``G = xi / (1 + xi) * exp(E1(v) / 2)`` with ``v = gamma * xi / (1 + xi)``. Musical noise
is controlled by a floor on ``xi`` (``xi_min_db``) and by the gain floor
``10^(-max_reduction_db / 20)``, which also bounds the reduction.

The noise spectrum comes from the analysis (``noise_psd``: expected ``|rfft(hann*frame)|^2``
per bin of a ``psd_n_fft``-point frame, periodic Hann) so every chunk of a file uses the
same one; without it, it is estimated from the audio given (10th percentile of each
bin's power across frames, bias-corrected for an exponential distribution).

Frames sit on the absolute hop grid of the file (``offset``), so chunks see the same
frames as a whole-file run; the decision-directed recursion forgets its start within a
fraction of a second of context.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["expint1", "lsa_gain", "noise_psd_for", "denoise", "stft_sizes"]


def stft_sizes(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop): about 46 ms frames (power of two) with 75 % overlap."""
    n_fft = 1 << int(round(math.log2(max(0.046 * sample_rate, 64))))
    return n_fft, n_fft // 4


def expint1(x: np.ndarray) -> np.ndarray:
    """Exponential integral E1(x) for x > 0 (clipped to [1e-10, 60])."""
    from scipy.special import exp1

    return exp1(np.clip(x, 1e-10, 60.0))


# exp(E1(v) / 2) tabulated on a uniform grid of ln v (linear interpolation: < 1e-4 relative
# error), so the per-frame recursion needs no special functions.
_LN_V0, _LN_V1, _TABLE_N = math.log(1e-10), math.log(60.0), 4096
_LN_STEP = (_LN_V1 - _LN_V0) / (_TABLE_N - 1)
_HALF_E1_EXP = np.exp(0.5 * expint1(np.exp(np.linspace(_LN_V0, _LN_V1, _TABLE_N))))


def _half_e1_exp(v: np.ndarray) -> np.ndarray:
    """``exp(E1(v) / 2)`` by table lookup (v clipped to [1e-10, 60])."""
    u = (np.log(np.clip(v, 1e-10, 60.0)) - _LN_V0) * (1.0 / _LN_STEP)
    i = np.minimum(u.astype(np.int64), _TABLE_N - 2)
    t = u - i
    return _HALF_E1_EXP[i] * (1.0 - t) + _HALF_E1_EXP[i + 1] * t


def lsa_gain(xi: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """MMSE-LSA gain for a-priori SNR ``xi`` and a-posteriori SNR ``gamma`` (linear)."""
    r = xi / (1.0 + xi)
    return r * _half_e1_exp(r * gamma)


def noise_psd_for(psd: list[float] | np.ndarray, psd_n_fft: int, n_fft: int,
                  psd_rate: int | None = None, rate: int | None = None) -> np.ndarray:
    """Convert an analysed noise PSD to the ``n_fft``-point periodic-Hann convention.

    Interpolates over frequency and rescales by the ratio of the windows' energies
    (the expected ``|rfft(w x)|^2`` of noise is proportional to ``sum(w^2)``). With
    ``psd_rate`` and ``rate`` (Hz) it also moves the spectrum to a signal resampled to
    ``rate``: the same power per Hz, so each bin's expected power scales by
    ``rate / psd_rate`` (beyond the source's Nyquist, its last bin is held).
    """
    psd = np.asarray(psd, dtype=np.float64)
    scale = n_fft / float(psd_n_fft)  # sum(hann_N^2) = 3N/8 for the periodic Hann window
    f_src = np.linspace(0.0, 0.5, psd.shape[0])
    f_dst = np.linspace(0.0, 0.5, n_fft // 2 + 1)
    if psd_rate is not None and rate is not None and psd_rate != rate:
        f_dst = f_dst * (rate / float(psd_rate))
        scale *= rate / float(psd_rate)
    return np.maximum(np.interp(f_dst, f_src, psd) * scale, 1e-20)


def _estimate_psd(power: np.ndarray) -> np.ndarray:
    """Noise power per bin from frames ``(C, K, L)``: 10th percentile over time / 0.1054."""
    q = np.quantile(power, 0.1, axis=-1)
    return np.maximum(q.mean(axis=0) / 0.10536, 1e-20)


def denoise(x: torch.Tensor, sample_rate: int, *, noise_psd: np.ndarray | None = None,
            max_reduction_db: float = 18.0, alpha: float = 0.98, xi_min_db: float = -20.0,
            noise_scale: float = 1.0, offset: int = 0) -> torch.Tensor:
    """Suppress stationary noise in ``x`` ``(C, N)``.

    Args:
        x: float tensor on any device (the STFT runs there).
        sample_rate: Hz.
        noise_psd: noise power per bin in this module's ``n_fft`` convention (see
            :func:`noise_psd_for`), shape ``(n_fft // 2 + 1,)``; None estimates it.
        max_reduction_db: largest attenuation of any bin (the gain floor).
        alpha: decision-directed smoothing (0.9 .. 0.99).
        xi_min_db: floor of the a-priori SNR (musical-noise control).
        noise_scale: over-subtraction factor applied to the noise PSD.
        offset: absolute index of ``x[0]`` in the file (frame grid alignment).

    Returns:
        Denoised tensor, same shape, dtype and device.
    """
    C, N = x.shape
    if N == 0:
        return x.clone()
    n_fft, hop = stft_sizes(sample_rate)
    dev = x.device
    p = offset % hop
    total = p + N
    q = (-total) % hop
    xp = torch.nn.functional.pad(x.to(torch.float32), (p, q))
    win = torch.hann_window(n_fft, periodic=True, device=dev)
    Y = torch.stft(xp, n_fft, hop, window=win, center=True, pad_mode="constant", return_complex=True)
    power = (Y.real**2 + Y.imag**2).cpu().numpy().astype(np.float64)  # (C, K, L)
    lam = _estimate_psd(power) if noise_psd is None else np.asarray(noise_psd, dtype=np.float64)
    lam = lam[None, :, None] * noise_scale  # (1, K, 1)
    g_min = 10.0 ** (-max_reduction_db / 20.0)
    xi_min = 10.0 ** (xi_min_db / 10.0)
    L = power.shape[-1]
    # Frame-major copies so each step of the recursion reads contiguous rows.
    gamma = np.ascontiguousarray(np.minimum(power / lam, 1e4).transpose(2, 0, 1))  # (L, C, K)
    ml = np.maximum(gamma - 1.0, 0.0)
    gains = np.empty_like(gamma)
    prev = None  # |A(l-1)|^2 / lambda = G^2 gamma of the previous frame
    for l in range(L):
        xi = ml[l] if prev is None else alpha * prev + (1.0 - alpha) * ml[l]
        g = np.maximum(lsa_gain(np.maximum(xi, xi_min), gamma[l]), g_min)
        gains[l] = g
        prev = g * g * gamma[l]
    gains = gains.transpose(1, 2, 0).astype(np.float32)
    G = torch.from_numpy(gains).to(dev)
    out = torch.istft(Y * G, n_fft, hop, window=win, center=True, length=xp.shape[-1])
    return out[:, p : p + N].to(x.dtype)
