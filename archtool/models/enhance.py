"""Two-stage phone-to-studio enhancement (seed 004): denoise, then generate.

Stage 1 (denoise) is an :class:`~archtool.models.bwe.EnvelopeUNet` that reads the
log band densities of the narrowband input and predicts a per-band, per-frame gain in
[0.1, 1] (a band mask, interpolated onto STFT bins). Stage 2 (generate) is a
:class:`~archtool.models.bwe.BandwidthExtender` with equalisation on: it re-balances
the known band (undoing the phone's colouring, +-15 dB) and generates the band above
the phone cutoff. Both stages are trained together on phone-degraded pairs, with an
auxiliary losses on stage 1's band envelope and on the output's envelope in the
known band (which trains the equalisation).

Shapes: waveforms ``(B, N)`` float32 at 16 kHz (any rate works; the model was trained
at 16 kHz).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archtool.models.bwe import BandwidthExtender, BweConfig, EnvelopeUNet

MASK_FLOOR = 0.1  # stage 1 attenuates by at most 20 dB (gentle: fewer musical artefacts)


class PhoneEnhancer(nn.Module):
    """Denoise (band mask) then extend and equalise; see the module docstring."""

    def __init__(self, config: BweConfig | None = None, **kwargs: Any):
        super().__init__()
        self.config = config or BweConfig(**({"eq": True} | kwargs))
        c = self.config
        self.denoiser = EnvelopeUNet(c.n_bands, c.width, c.depth, c.kernel, c.norm)
        self.extender = BandwidthExtender(c)

    def denoise(self, x: torch.Tensor, rate: int, cutoff_hz: torch.Tensor,
                mask_floor: float = MASK_FLOOR) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: ``(B, N) -> (B, N)`` and its spectrum ``(B, F, T)``; ``mask_floor`` is the
        smallest band gain (a higher floor than trained with denoises more gently)."""
        ext = self.extender
        spec = ext.stft(x, rate)
        feats, _, _ = ext.features(spec, rate, cutoff_hz)
        out = self.denoiser(feats)
        mask = mask_floor + (1 - mask_floor) * torch.sigmoid(out[:, :self.config.n_bands])
        spec_d = spec * ext.to_bins(mask, rate)
        return ext.istft(spec_d, rate, x.shape[-1]), spec_d

    def forward(self, x: torch.Tensor, rate: int, cutoff_hz: torch.Tensor | float, gain: float = 1.0,
                generator: torch.Generator | None = None, return_parts: bool = False,
                eq_mode: str = "dynamic", eq_amount: float = 1.0, mask_floor: float = MASK_FLOOR) -> Any:
        """Enhance ``x`` ``(B, N)``; ``cutoff_hz`` is the phone band's upper edge (Hz)."""
        b = x.shape[0]
        if not torch.is_tensor(cutoff_hz):
            cutoff_hz = torch.full((b,), float(cutoff_hz), device=x.device)
        cutoff_hz = cutoff_hz.to(x.device, torch.float32)
        y1, spec_d = self.denoise(x, rate, cutoff_hz, mask_floor)
        parts = self.extender(y1, rate, cutoff_hz, gain=gain, generator=generator, return_parts=True,
                              eq_mode=eq_mode, eq_amount=eq_amount)
        if not return_parts:
            return parts["y"]
        ext = self.extender

        def stage1_loss(target: torch.Tensor) -> torch.Tensor:
            """L1 of log10 band densities (known band) between stage 1 and ``target``."""
            spec_t = ext.stft(target, rate)
            pt = spec_t.real ** 2 + spec_t.imag ** 2
            pd = spec_d.real ** 2 + spec_d.imag ** 2
            ref = torch.log10(pt.mean(dim=(1, 2), keepdim=True) + 1e-10)
            lt = ext.band_log_density(pt, rate).maximum(ref - 6)
            ld = ext.band_log_density(pd, rate).maximum(ref - 6)
            known = parts["known"]
            return 0.5 * ((lt - ld).abs() * known).sum() / (known.sum() * lt.shape[-1]).clamp_min(1.0)

        def output_loss(target: torch.Tensor) -> torch.Tensor:
            """L1 of log10 band densities (known band) between the output and ``target``:
            what trains stage 2's equalisation towards the studio spectrum."""
            spec_t = ext.stft(target, rate)
            pt = spec_t.real ** 2 + spec_t.imag ** 2
            py = parts["spec"].real ** 2 + parts["spec"].imag ** 2
            ref = torch.log10(pt.mean(dim=(1, 2), keepdim=True) + 1e-10)
            lt = ext.band_log_density(pt, rate).maximum(ref - 6)
            ly = ext.band_log_density(py, rate)
            known = parts["known"]
            return ((lt - ly).abs() * known).sum() / (known.sum() * lt.shape[-1]).clamp_min(1.0)

        parts["stage1"] = y1
        parts["stage1_loss_fn"] = lambda target: stage1_loss(target) + output_loss(target)
        return parts
