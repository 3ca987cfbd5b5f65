"""Spectral fusion of a blind restorer's output with a DSP estimate.

Op-GAN (archtool.models.opgan) is strongest on heavy blends and weakest where little is
wrong: on a nearly clean input its own distortion outweighs what it removes, and on white
noise alone the DSP denoiser often does better. This small network looks at three
short-time spectra of the same excerpt, the input ``X``, Op-GAN's output ``G`` and the DSP
denoiser's output ``D``, and predicts for every time-frequency bin two real weights:

    Y = X + a * (G - X) + b * (D - X),   a in [1 - A, 1 + A],  b in [-B, B]

so it can keep Op-GAN's correction, shrink it where the input was already clean, push it
further where Op-GAN under-corrects, or borrow from the DSP estimate. With zero output
(its initialisation) it returns ``G`` exactly. Features are log power ratios, so the
fusion does not depend on the excerpt's level.

Shapes: spectra are complex ``(B, F, T)``; waveforms ``(B, N)`` float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FusionConfig:
    """Architecture and STFT of a fusion network (stored in its checkpoint)."""

    n_fft: int = 512
    hop: int = 128
    channels: int = 12
    a_range: float = 1.5  # a = 1 + a_range * tanh(.)
    b_range: float = 1.0  # b = b_range * tanh(.)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def receptive_frames(self) -> int:
        """Frames each output bin sees on either side (3 time taps at dilations 1, 2, 4)."""
        return 1 + 2 + 4


class SpectralFusion(nn.Module):
    """Per-bin mixing weights from (log |X|, log |G/X|, log |D/X|) by a dilated 2-D CNN."""

    def __init__(self, cfg: FusionConfig = FusionConfig()):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, (5, 3), padding=(2, 1)), nn.GELU(),
            nn.Conv2d(ch, ch, (5, 3), padding=(4, 2), dilation=(2, 2)), nn.GELU(),
            nn.Conv2d(ch, ch, (5, 3), padding=(8, 4), dilation=(4, 4)), nn.GELU(),
            nn.Conv2d(ch, 2, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    @staticmethod
    def features(X: torch.Tensor, G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """``(B, 3, F, T)``: input log power and the two estimates' log power ratios to it."""
        def log_power(V: torch.Tensor) -> torch.Tensor:
            return torch.log10(V.real ** 2 + V.imag ** 2 + 1e-8)

        lx = log_power(X)
        return torch.stack([lx / 4, (log_power(G) - lx) / 2, (log_power(D) - lx) / 2], 1)

    def mix(self, X: torch.Tensor, G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """Fused complex spectrum ``(B, F, T)``."""
        w = self.net(self.features(X, G, D))
        a = 1 + self.cfg.a_range * torch.tanh(w[:, 0])
        b = self.cfg.b_range * torch.tanh(w[:, 1])
        return X + a * (G - X) + b * (D - X)

    def stft(self, v: torch.Tensor) -> torch.Tensor:
        return torch.stft(v, self.cfg.n_fft, self.cfg.hop, window=self.window, return_complex=True)

    def istft(self, V: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(V, self.cfg.n_fft, self.cfg.hop, window=self.window, length=length)

    def forward(self, x: torch.Tensor, g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, N)`` in, fused waveform ``(B, N)`` out."""
        return self.istft(self.mix(self.stft(x), self.stft(g), self.stft(d)), x.shape[-1])


@torch.no_grad()
def fuse_long(model: SpectralFusion, x: torch.Tensor, g: torch.Tensor, d: torch.Tensor,
              chunk: int = 16000 * 20) -> torch.Tensor:
    """Fuse ``(C, N)`` signals of any length in chunks with context crops.

    Each chunk is processed with enough context on both sides that the kept part equals
    what a single pass would give, so memory stays bounded on long files."""
    n = x.shape[-1]
    if n == 0:
        return g.clone()
    hop = model.cfg.hop
    context = (model.cfg.receptive_frames + 2) * hop + model.cfg.n_fft
    chunk = max(chunk - chunk % hop, hop * 8)
    out = torch.empty_like(g)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lo, hi = max(0, start - context), min(n, stop + context)  # lo stays on the hop grid
        y = model(x[:, lo:hi], g[:, lo:hi], d[:, lo:hi])
        out[:, start:stop] = y[:, start - lo:stop - lo]
    return out
