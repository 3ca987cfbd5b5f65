"""A small U-Net that fills masked time frames of a magnitude spectrogram.

Input is two channels, ``(batch, 2, bins, frames)``: the normalised log-magnitude
with unknown frames zeroed or pre-filled by log-domain interpolation across the gap
(``prefill``), and the mask (1 = known, 0 = missing). Output is the
predicted normalised log-magnitude for every bin and frame, ``(batch, 1, bins,
frames)``; callers keep the known frames and take only the missing ones
(:func:`composite`). The network is fully convolutional: ``bins`` and ``frames``
only need to be multiples of ``2 ** (levels - 1)``.

Features (:func:`to_features` / :func:`from_features`): magnitudes are divided by
the RMS magnitude of the *known* frames, so the same network works at any level,
then ``log(m + 1e-3) / 3``.

The STFT layout (:class:`SpecConfig`) is part of a checkpoint: a periodic Hann
window of ``n_fft`` samples, hop ``hop``, centred frames, and the Nyquist bin
dropped so that ``bins = n_fft // 2``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_FLOOR = 1e-3
FEATURE_SCALE = 3.0


@dataclass(frozen=True)
class SpecConfig:
    """STFT layout of a model: rate in Hz, window/FFT length and hop in samples."""

    sample_rate: int
    n_fft: int
    hop: int

    @property
    def bins(self) -> int:
        return self.n_fft // 2

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def stft(x: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """Complex STFT of ``x`` ``(..., samples)`` -> ``(..., n_fft//2 + 1, frames)``."""
    window = torch.hann_window(cfg.n_fft, dtype=x.dtype, device=x.device)
    shape = x.shape
    spec = torch.stft(x.reshape(-1, shape[-1]), cfg.n_fft, cfg.hop, window=window,
                      center=True, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, cfg: SpecConfig, length: int) -> torch.Tensor:
    """Inverse of :func:`stft` (least-squares overlap-add) to ``(..., length)``."""
    window = torch.hann_window(cfg.n_fft, dtype=spec.real.dtype, device=spec.device)
    shape = spec.shape
    x = torch.istft(spec.reshape(-1, *shape[-2:]), cfg.n_fft, cfg.hop, window=window,
                    center=True, length=length)
    return x.reshape(*shape[:-2], length)


def known_rms(mag: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RMS magnitude over known frames: ``mag`` ``(B, F, T)``, ``mask`` ``(B, T)`` -> ``(B, 1, 1)``."""
    w = mask[:, None, :].to(mag.dtype)
    power = (mag.square() * w).sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * mag.shape[1]).clamp_min(1.0)
    return power.sqrt().clamp_min(1e-8)[:, None, None]


def to_features(mag: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Normalised log-magnitude of ``mag`` ``(B, F, T)`` relative to ``ref`` ``(B, 1, 1)``."""
    return torch.log(mag / ref + FEATURE_FLOOR) / FEATURE_SCALE


def from_features(feat: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_features` (magnitudes are clamped at zero)."""
    return (torch.exp(feat * FEATURE_SCALE) - FEATURE_FLOOR).clamp_min(0.0) * ref


def interp_fill(feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Missing frames filled by per-bin linear interpolation between the nearest known
    frames (held constant beyond the first/last known frame): ``(B, F, T)``, mask ``(B, T)``.

    On log-magnitude features this is log-domain interpolation across each gap; an
    example with no known frame is returned unchanged.
    """
    b, f, t = feat.shape
    known = mask > 0.5
    idx = torch.arange(t, device=feat.device).expand(b, t)
    prev = torch.where(known, idx, torch.full_like(idx, -1)).cummax(dim=1).values
    nxt = torch.where(known, idx, torch.full_like(idx, t)).flip(1).cummin(dim=1).values.flip(1)
    prev_ok, next_ok = prev >= 0, nxt < t
    prev = torch.where(prev_ok, prev, torch.where(next_ok, nxt, idx))
    nxt = torch.where(next_ok, nxt, prev)
    span = (nxt - prev).clamp_min(1).to(feat.dtype)
    w = ((idx - prev).to(feat.dtype) / span).clamp(0.0, 1.0)
    left = torch.gather(feat, 2, prev[:, None, :].expand(b, f, t))
    right = torch.gather(feat, 2, nxt[:, None, :].expand(b, f, t))
    return composite(feat, left * (1.0 - w[:, None, :]) + right * w[:, None, :], mask)


def composite(feat: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known frames from ``feat``, missing ones from ``pred`` (both ``(B, F, T)``; mask ``(B, T)``)."""
    m = mask[:, None, :].to(feat.dtype)
    return feat * m + pred * (1.0 - m)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.conv1(x), 0.1)
        h = self.conv2(h)
        return F.leaky_relu(h + self.skip(x), 0.1)


class InpaintUNet(nn.Module):
    """U-Net over ``(B, 2, F, T)`` -> ``(B, 1, F, T)``; ``levels`` resolutions, ``base`` channels."""

    def __init__(self, base: int = 16, levels: int = 5, max_channels: int = 128, prefill: str = "zero"):
        super().__init__()
        if prefill not in ("zero", "interp"):
            raise ValueError(f"prefill must be 'zero' or 'interp', not {prefill!r}")
        self.prefill = prefill
        self.arch = {"base": base, "levels": levels, "max_channels": max_channels, "prefill": prefill}
        chans = [min(base * 2 ** i, max_channels) for i in range(levels)]
        self.stem = _Block(2, chans[0])
        self.down = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)
                                  for i in range(levels - 1))
        self.enc = nn.ModuleList(_Block(chans[i + 1], chans[i + 1]) for i in range(levels - 1))
        self.middle = nn.Sequential(_Block(chans[-1], chans[-1], dilation=2),
                                    _Block(chans[-1], chans[-1], dilation=4))
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 1) for i in range(levels - 1))
        self.dec = nn.ModuleList(_Block(2 * chans[i], chans[i]) for i in range(levels - 1))
        self.head = nn.Conv2d(chans[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Both spatial sizes must be multiples of this."""
        return 2 ** (len(self.down))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        h = skips[0]
        for down, enc in zip(self.down, self.enc):
            h = enc(F.leaky_relu(down(h), 0.1))
            skips.append(h)
        h = self.middle(skips.pop())
        for i in reversed(range(len(self.up))):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = self.dec[i](torch.cat([self.up[i](h), skips[i]], dim=1))
        # Residual on the masked input: the network learns a correction, not a copy.
        return x[:, :1] + self.head(h)

    def predict(self, feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fill missing frames: ``feat`` ``(B, F, T)`` features, ``mask`` ``(B, T)`` -> ``(B, F, T)``.

        Missing frames enter the network as zeros (``prefill="zero"``) or as the
        log-magnitude interpolation across the gap (``"interp"``: the network then
        learns a correction to it). Pads frames (zeros) and bins (edge) to the required
        multiple internally.
        """
        b, f, t = feat.shape
        m = self.multiple
        pf, pt = (-f) % m, (-t) % m
        m2 = mask[:, None, :].to(feat.dtype).expand(b, f, t)
        first = interp_fill(feat, mask) if self.prefill == "interp" else feat * m2
        x = torch.stack([first, m2], dim=1)
        if pt:
            x = F.pad(x, (0, pt), mode="constant", value=0.0)
        if pf:
            x = F.pad(x, (0, 0, 0, pf), mode="replicate")
        out = self.forward(x)[:, 0, :f, :t]
        return composite(feat, out, mask)


def build_model(arch: dict[str, Any] | None = None) -> InpaintUNet:
    """An :class:`InpaintUNet` from the ``arch`` dict stored in checkpoint metadata."""
    return InpaintUNet(**(arch or {}))
