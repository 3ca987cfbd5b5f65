"""A perfectly invertible constant-Q transform in torch (a painless non-stationary Gabor frame).

The construction follows the one CQT-Diff builds on (Holighaus, Dörfler, Velasco, Grill:
"A framework for invertible, real-time constant-Q transforms", 2013), in its "matrix
form": every frequency bin has the same number of time coefficients, so the transform of a
segment is a 2-D array that an image U-Net can process.

For a segment of ``length`` samples ``x`` with spectrum ``X = rfft(x)``:

* windows ``g_k`` are raised-cosine (Hann) bumps on a log-frequency axis, centred on
  ``f_k = f_min * 2**(k / bins_per_octave)`` and reaching the neighbouring centres, so
  consecutive windows overlap by half; a low-pass window covers ``0 .. f_0`` and a
  high-pass one ``f_{K-1} .. Nyquist``, so every frequency is covered;
* coefficient row ``k`` is the inverse FFT (``frames = length / hop`` points) of the
  windowed band ``X * g_k``, demodulated to baseband (band centre at FFT index 0), scaled
  so that a sinusoid at a bin centre gives a coefficient of its amplitude;
* the frame is *painless* (each window's support fits into ``frames`` FFT bins), so the
  frame operator is diagonal in frequency, ``D(f) = sum_k g_k(f)**2``, and the canonical
  dual windows ``g_k / D`` reconstruct ``x`` exactly (up to float rounding).

Shapes: :meth:`CQT.forward` maps ``(..., length)`` real to ``(..., bins, frames)`` complex;
:meth:`CQT.inverse` maps back. Everything is differentiable and runs on any device.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class CQTConfig:
    """Layout of the transform (independent of the segment length).

    Attributes:
        sample_rate: Hz.
        bins_per_octave: constant-Q bins per octave.
        octaves: octaves below Nyquist covered by constant-Q bins (``f_min = nyq / 2**octaves``).
        hop: samples per coefficient frame (``length / frames``); must satisfy the painless
            condition ``nyq * (1 - 2**(-2 / bins_per_octave)) <= sample_rate / hop``.
    """

    sample_rate: int = 22050
    bins_per_octave: int = 12
    octaves: int = 7
    hop: int = 16

    @property
    def n_bins(self) -> int:
        """Rows of the coefficient array: constant-Q bins plus the low- and high-pass bins."""
        return self.bins_per_octave * self.octaves + 2

    def to_dict(self) -> dict:
        return asdict(self)


def _log_hann(f: torch.Tensor, centre: float, lo: float, hi: float) -> torch.Tensor:
    """Raised cosine on a log-frequency axis, 1 at ``centre``, 0 at ``lo`` and ``hi``."""
    out = torch.zeros_like(f)
    safe = f.clamp_min(1e-9)
    left = (f > lo) & (f <= centre)
    right = (f > centre) & (f < hi)
    if left.any():
        t = torch.log(safe[left] / centre) / math.log(centre / lo)  # -1 .. 0
        out[left] = 0.5 + 0.5 * torch.cos(math.pi * t)
    if right.any():
        t = torch.log(safe[right] / centre) / math.log(hi / centre)  # 0 .. 1
        out[right] = 0.5 + 0.5 * torch.cos(math.pi * t)
    return out


class CQT(torch.nn.Module):
    """The transform for one segment ``length`` (a multiple of ``config.hop``).

    Buffers (move with ``.to(device)``): ``index`` ``(bins, frames)`` rfft indices of each
    row's band (in baseband FFT order), ``window`` and ``dual`` ``(bins, frames)``.
    """

    def __init__(self, config: CQTConfig, length: int):
        super().__init__()
        if length % config.hop:
            raise ValueError(f"CQT length {length} must be a multiple of hop {config.hop}")
        self.config, self.length = config, int(length)
        self.frames = length // config.hop
        rate, bpo, k_cq = config.sample_rate, config.bins_per_octave, config.bins_per_octave * config.octaves
        nyq = rate / 2.0
        n_freq = length // 2 + 1
        df = rate / length
        freqs = torch.arange(n_freq, dtype=torch.float64) * df
        f_min = nyq / 2.0 ** config.octaves
        centres = [f_min * 2.0 ** (k / bpo) for k in range(-1, k_cq + 1)]  # f_{-1} .. f_K (= nyq)
        windows: list[torch.Tensor] = []
        low = torch.zeros(n_freq, dtype=torch.float64)  # low-pass: 1 up to f_{-1}, falls to f_0
        low[freqs <= centres[0]] = 1.0
        fall = (freqs > centres[0]) & (freqs < centres[1])
        low[fall] = 0.5 + 0.5 * torch.cos(math.pi * torch.log(freqs[fall] / centres[0]) / math.log(centres[1] / centres[0]))
        windows.append(low)
        for k in range(k_cq):
            windows.append(_log_hann(freqs, centres[k + 1], centres[k], centres[k + 2]))
        high = torch.zeros(n_freq, dtype=torch.float64)  # high-pass: rises from f_{K-1} to nyq
        rise = freqs > centres[-2]
        high[rise] = 0.5 + 0.5 * torch.cos(math.pi * torch.log(freqs[rise] / nyq) / math.log(nyq / centres[-2]))
        windows.append(high)
        g = torch.stack(windows)  # (bins, n_freq)
        centre_idx = [0] + [int(round(c / df)) for c in centres[1:-1]] + [n_freq - 1]
        m = self.frames
        offsets = torch.arange(m)
        offsets = torch.where(offsets < m // 2 + m % 2, offsets, offsets - m)  # baseband FFT order
        index = torch.tensor(centre_idx)[:, None] + offsets[None, :]
        valid = (index >= 0) & (index < n_freq)
        index = index.clamp(0, n_freq - 1)
        win = torch.where(valid, torch.gather(g, 1, index), torch.zeros((), dtype=torch.float64))
        covered = win.sum(dim=1)
        total = g.sum(dim=1)
        if torch.any((total - covered).abs() > 1e-9 * total.clamp_min(1.0)):
            raise ValueError(f"CQT layout {config} is not painless at length {length}: a window is wider "
                             f"than {m} FFT bins (lower hop or raise bins_per_octave)")
        frame_op = g.square().sum(dim=0)  # D(f)
        if float(frame_op.min()) <= 1e-6:
            raise ValueError(f"CQT layout {config}: windows leave frequencies uncovered")
        dual = torch.where(valid, win / frame_op[index], torch.zeros((), dtype=torch.float64))
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("window", win.float(), persistent=False)
        self.register_buffer("dual", dual.float(), persistent=False)
        self.n_freq = n_freq
        self.scale = 2.0 * m / length  # a sinusoid at a bin centre -> coefficient of its amplitude

    @property
    def n_bins(self) -> int:
        return int(self.index.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., length)`` real -> ``(..., bins, frames)`` complex coefficients."""
        if x.shape[-1] != self.length:
            raise ValueError(f"CQT built for {self.length} samples, got {x.shape[-1]}")
        spec = torch.fft.rfft(x.float(), dim=-1)  # (..., n_freq)
        bands = spec[..., self.index] * self.window  # (..., bins, frames)
        return torch.fft.ifft(bands, dim=-1) * self.scale

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """``(..., bins, frames)`` complex -> ``(..., length)`` real (the canonical dual frame)."""
        bands = torch.fft.fft(c, dim=-1) * (self.dual / self.scale)
        lead = bands.shape[:-2]
        flat = bands.reshape(-1, self.index.numel())
        spec = torch.zeros(flat.shape[0], self.n_freq, dtype=flat.dtype, device=flat.device)
        spec = spec.index_add(1, self.index.reshape(-1), flat)
        return torch.fft.irfft(spec, n=self.length, dim=-1).reshape(*lead, self.length)


def round_trip_error_db(x: torch.Tensor, cqt: CQT) -> float:
    """Reconstruction error of ``cqt.inverse(cqt(x))`` relative to ``x``, in dB."""
    y = cqt.inverse(cqt(x))
    err = (y - x).double().square().sum()
    ref = x.double().square().sum().clamp_min(1e-30)
    return float(10 * torch.log10(err.clamp_min(1e-30) / ref))
