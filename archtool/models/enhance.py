"""Two-stage phone-to-studio enhancement (seed 004): denoise, then generate.

Stage 1 (denoise) is a :class:`MaskDenoiser`: a dilated temporal convolution network over
the normalised log power spectrum that predicts a gain per STFT bin and frame, bounded
in dB between ``floor_db`` (at most that much attenuation, so it cannot become a hard
band gate) and ``max_db`` (a little boost, which lets it undo the phone's colouring).
Stage 2 (generate) is a :class:`~archtool.models.bwe.BandwidthExtender` that generates
the band above the phone cutoff (its own equaliser is not used). Training
(:mod:`archtool.train.enhance`): multi-resolution STFT + log-mel losses on both stages,
then a light adversarial loss from a multi-resolution spectrogram discriminator
(:class:`SpectrogramDiscriminator`) on the output.

Shapes: waveforms ``(B, N)`` float32 at 16 kHz (:data:`MODEL_RATE`; the STFT sizes of
stage 1 follow the extender's: 512-point window, 128-sample hop); spectra ``(B, F, T)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from archtool.models.bwe import BandwidthExtender, BweConfig, stft_sizes

MODEL_RATE = 16000


@dataclass(frozen=True)
class EnhanceConfig:
    """Architecture of :class:`PhoneEnhancer` (stored in checkpoint metadata as ``arch``)."""

    bwe: dict[str, Any] = field(default_factory=lambda: {"width": 32, "eq": True, "norm": True})
    width: int = 128          # channels of the mask network
    blocks: int = 6           # dilated residual blocks (dilations 1, 2, 4, 8, 1, 2, ...)
    floor_db: float = -25.0   # largest attenuation of stage 1
    max_db: float = 6.0       # largest boost of stage 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DilatedBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, width)
        self.act = nn.PReLU(width)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.act(self.norm(self.conv(x))))


class MaskDenoiser(nn.Module):
    """``(B, F, T)`` complex spectrum -> gain ``(B, F, T)`` in [10^(floor_db/20), 10^(max_db/20)].

    Input features: ``log10`` power per bin minus the item's mean log level, clamped to
    [-8, 4]. The gain is ``floor_db + (max_db - floor_db) * sigmoid(z)`` in dB; the
    output bias starts the network at 0 dB (identity).
    """

    def __init__(self, n_bins: int, width: int = 128, blocks: int = 6, floor_db: float = -25.0,
                 max_db: float = 6.0):
        super().__init__()
        self.floor_db, self.max_db = float(floor_db), float(max_db)
        self.inp = nn.Sequential(nn.Conv1d(n_bins, width, 3, padding=1), nn.GroupNorm(1, width), nn.PReLU(width))
        self.blocks = nn.ModuleList(_DilatedBlock(width, 2 ** (i % 4)) for i in range(blocks))
        self.out = nn.Conv1d(width, n_bins, 1)
        identity = -self.floor_db / (self.max_db - self.floor_db)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, math.log(identity / (1 - identity)))

    def logits(self, spec: torch.Tensor) -> torch.Tensor:
        power = spec.real ** 2 + spec.imag ** 2
        logp = torch.log10(power + 1e-10)
        ref = torch.log10(power.mean(dim=(1, 2), keepdim=True) + 1e-10)
        x = self.inp((logp - ref).clamp(-8.0, 4.0))
        for block in self.blocks:
            x = block(x)
        return self.out(x)

    def gain_db(self, logits: torch.Tensor) -> torch.Tensor:
        return self.floor_db + (self.max_db - self.floor_db) * torch.sigmoid(logits)


class PhoneEnhancer(nn.Module):
    """Stage 1 :class:`MaskDenoiser`, stage 2 :class:`BandwidthExtender`; see the module docstring."""

    def __init__(self, config: EnhanceConfig | None = None):
        super().__init__()
        self.config = config or EnhanceConfig()
        c = self.config
        self.extender = BandwidthExtender(BweConfig(**c.bwe))
        n_fft, _ = stft_sizes(MODEL_RATE)
        self.denoiser = MaskDenoiser(n_fft // 2 + 1, c.width, c.blocks, c.floor_db, c.max_db)

    def denoise(self, x: torch.Tensor, strength: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1 on ``x`` ``(B, N)`` at 16 kHz: the denoised waveform ``(B, N)`` and the
        mask logits ``(B, F, T)``. ``strength`` scales the gain in dB (0 = stage 1 off)."""
        ext = self.extender
        spec = ext.stft(x, MODEL_RATE)
        logits = self.denoiser.logits(spec)
        gain = 10 ** (strength * self.denoiser.gain_db(logits) / 20.0)
        return ext.istft(spec * gain, MODEL_RATE, x.shape[-1]), logits

    def forward(self, x: torch.Tensor, cutoff_hz: torch.Tensor | float, gain: float = 1.0,
                strength: float = 1.0, generator: torch.Generator | None = None,
                phase: torch.Tensor | None = None, return_parts: bool = False) -> Any:
        """Enhance ``x`` ``(B, N)`` at 16 kHz whose content stops at ``cutoff_hz`` (Hz,
        scalar or ``(B,)``). ``gain`` scales the generated band (0: none), ``strength``
        stage 1 (0: none). Returns ``y`` ``(B, N)``, or with ``return_parts`` the
        extender's parts dict plus ``stage1`` (waveform) and ``logits``."""
        y1, logits = self.denoise(x, strength)
        parts = self.extender(y1, MODEL_RATE, cutoff_hz, gain=gain, generator=generator, phase=phase,
                              return_parts=True, eq_mode="off")
        if not return_parts:
            return parts["y"]
        parts["stage1"], parts["logits"] = y1, logits
        return parts


class _ResolutionDiscriminator(nn.Module):
    """2D conv stack over one log-magnitude spectrogram ``(B, 1, F, T)`` -> patch scores."""

    def __init__(self, n_fft: int, hop: int, channels: int = 8):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        c = channels
        self.layers = nn.ModuleList([
            nn.Conv2d(1, c, (7, 5), stride=(2, 1), padding=(3, 2)),
            nn.Conv2d(c, c, (7, 5), stride=(2, 2), padding=(3, 2)),
            nn.Conv2d(c, c, (7, 5), stride=(2, 2), padding=(3, 2)),
            nn.Conv2d(c, c, (5, 3), stride=(2, 1), padding=(2, 1)),
        ])
        self.out = nn.Conv2d(c, 1, (3, 3), padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        win = torch.hann_window(self.n_fft, device=x.device)
        spec = torch.stft(x, self.n_fft, self.hop, window=win, return_complex=True).abs()
        h = torch.log(spec.clamp_min(1e-5))[:, None]
        feats = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        return self.out(h), feats


class SpectrogramDiscriminator(nn.Module):
    """Multi-resolution spectrogram discriminator (FFT 256, 512, 1024 with quarter hops).

    ``forward(x (B, N))`` returns a list of ``(scores, features)`` per resolution.
    """

    def __init__(self, resolutions: tuple[int, ...] = (256, 512, 1024), channels: int = 8):
        super().__init__()
        self.discs = nn.ModuleList(_ResolutionDiscriminator(n, n // 4, channels) for n in resolutions)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.discs]
