"""Op-GAN (Ince, Kiranyaz et al., arXiv 2212.14618): a 1D Self-ONN U-Net generator and a
strided Self-ONN discriminator for blind, time-domain restoration of blended noise,
background mixture and reverberation.

Generator: ``depth`` encoder layers (Self-ONN, kernel 5, stride 2, channel widths
``width * (1, 2, 4, 8, 8, ...)``, the multiplier capped at ``max_mult``), then decoder layers (x2 nearest upsampling + Self-ONN,
kernel 5) that concatenate the encoder output of the same resolution (U-Net skips), and a
last upsampling Self-ONN layer that also sees the input waveform itself. Every hidden
activation is tanh, which keeps each layer's input in [-1, 1] as the Maclaurin nodal
operator needs. Two changes from the paper, both for learning faster on small compute:
the last layer sees the input waveform (a full-resolution skip), and with ``residual``
the network predicts a correction added to its input (it starts as the identity).

Discriminator: strided Self-ONN layers (kernel 4) with tanh, ending in a 1-channel
patch score map (least-squares GAN).

Shapes: the generator maps ``(B, 1, T)`` to ``(B, 1, T)`` for ``T`` a multiple of
``2 ** depth``; the discriminator maps ``(B, 1, T)`` to ``(B, 1, T')``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from archtool.models.selfonn import SelfONN1d


def _widths(width: int, depth: int, max_mult: int = 8) -> list[int]:
    return [width * min(2 ** i, max_mult) for i in range(depth)]


class _Down(nn.Module):
    """Self-ONN (kernel 5, stride 2) -> optional instance norm -> tanh."""

    def __init__(self, cin: int, cout: int, q: int, norm: bool):
        super().__init__()
        self.conv = SelfONN1d(cin, cout, 5, stride=2, padding=2, q=q)
        self.norm = nn.InstanceNorm1d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.conv(x)))


def _polyphase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """``(O, I, 5)`` -> ``(2O, I, 3)``: the kernels that give the even and odd outputs of a
    5-tap, padding-2 convolution of a x2 nearest-upsampled signal, computed at the low rate.

    With u[n] = h[n // 2]: y[2m] = (w0+w1) h[m-1] + (w2+w3) h[m] + w4 h[m+1] and
    y[2m+1] = w0 h[m-1] + (w1+w2) h[m] + (w3+w4) h[m+1]."""
    w0, w1, w2, w3, w4 = weight.unbind(-1)
    even = torch.stack([w0 + w1, w2 + w3, w4], -1)
    odd = torch.stack([w0, w1 + w2, w3 + w4], -1)
    return torch.cat([even, odd], 0)


def conv_upsampled(layer: SelfONN1d, h: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """``layer(nearest_upsample_x2(h))`` without the bias, computed at ``h``'s rate.

    Powers commute with repetition, so they are taken before upsampling, and the 5-tap
    convolution of the repeated signal is two 3-tap convolutions interleaved: 40 % fewer
    multiply-adds and half the memory traffic of upsampling first (same result to float
    rounding). ``weight`` overrides the layer's (a slice of its input channels)."""
    if (layer.kernel_size, layer.padding, layer.stride, layer.dilation) != (5, 2, 1, 1):
        raise ValueError("conv_upsampled needs a kernel-5, padding-2, stride-1 layer")
    w = layer.weight if weight is None else weight
    y = F.conv1d(layer.powers(h), _polyphase_kernels(w), None, 1, 1)  # (B, 2O, L)
    b, two_o, n = y.shape
    return y.view(b, 2, two_o // 2, n).permute(0, 2, 3, 1).reshape(b, two_o // 2, 2 * n)


class _Up(nn.Module):
    """x2 nearest upsampling -> Self-ONN (kernel 5) -> instance norm -> tanh."""

    def __init__(self, cin: int, cout: int, q: int):
        super().__init__()
        self.conv = SelfONN1d(cin, cout, 5, padding=2, q=q)
        self.norm = nn.InstanceNorm1d(cout, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = conv_upsampled(self.conv, x) + self.conv.bias[:, None]
        return torch.tanh(self.norm(y))


class OpGANGenerator(nn.Module):
    """Self-ONN encoder-decoder; ``(B, 1, T)`` in [-1, 1] -> ``(B, 1, T)`` restored."""

    def __init__(self, width: int = 16, depth: int = 5, q: int = 3, residual: bool = True,
                 max_mult: int = 8):
        super().__init__()
        self.config: dict[str, Any] = {"width": width, "depth": depth, "q": q, "residual": residual,
                                       "max_mult": max_mult}
        widths = _widths(width, depth, max_mult)
        self.down = nn.ModuleList(
            _Down(1 if i == 0 else widths[i - 1], widths[i], q, norm=i > 0) for i in range(depth))
        ups = []
        cin = widths[-1]
        for i in range(depth - 2, -1, -1):
            ups.append(_Up(cin, widths[i], q))
            cin = widths[i] * 2  # upsampled features + skip of the same resolution
        self.up = nn.ModuleList(ups)
        self.last = SelfONN1d(cin + 1, 1, 5, padding=2, q=q)
        if residual:  # start as the identity: the correction is learned from zero
            nn.init.zeros_(self.last.weight)
            nn.init.zeros_(self.last.bias)
        self.residual = residual
        self.multiple = 2 ** depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.multiple:
            raise ValueError(f"input length {x.shape[-1]} is not a multiple of {self.multiple}")
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        for layer, skip in zip(self.up, reversed(skips[:-1])):
            h = torch.cat([layer(h), skip], dim=1)
        y = self._last(h, x)
        return x + y if self.residual else y

    def _last(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``self.last(cat([upsample_x2(h), x]))``: the upsampled part at the low rate."""
        last, ch = self.last, h.shape[1]
        cin = ch + 1
        idx_h = [p * cin + j for p in range(last.q) for j in range(ch)]
        idx_x = [p * cin + ch for p in range(last.q)]
        y = conv_upsampled(last, h, last.weight[:, idx_h])
        y = y + F.conv1d(last.powers(x), last.weight[:, idx_x], last.bias, 1, 2)
        return y


class OpGANDiscriminator(nn.Module):
    """Strided Self-ONN patch discriminator; ``(B, 1, T)`` -> scores ``(B, 1, T')``."""

    def __init__(self, width: int = 8, q: int = 3, strides: tuple[int, ...] = (4, 4, 4, 4)):
        super().__init__()
        self.config: dict[str, Any] = {"width": width, "q": q, "strides": list(strides)}
        layers: list[nn.Module] = []
        cin = 1
        for i, s in enumerate(strides):
            cout = width * min(2 ** i, 16)
            layers.append(_DiscBlock(cin, cout, s, q, norm=i > 0))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.last = SelfONN1d(cin, 1, 3, padding=1, q=q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.body(x))


class _DiscBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, q: int, norm: bool):
        super().__init__()
        self.conv = SelfONN1d(cin, cout, stride * 2, stride=stride, padding=stride // 2, q=q)
        self.norm = nn.InstanceNorm1d(cout, affine=True) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.conv(x)))


def build_generator(arch: dict[str, Any]) -> OpGANGenerator:
    """An :class:`OpGANGenerator` from the ``arch`` dict stored in checkpoint metadata."""
    return OpGANGenerator(**{k: arch[k] for k in ("width", "depth", "q", "residual", "max_mult") if k in arch})


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
