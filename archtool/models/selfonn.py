"""Self-organised operational layers (Self-ONN) with generative neurons, in 1D.

A generative neuron replaces the convolution's fixed multiply by a learned nodal
operator: a Maclaurin (power) series of order ``q`` of its input,

    y[o, t] = b[o] + sum_{p=1..q} sum_{i,k} w_p[o, i, k] * x[i, t*s + k*d - pad] ** p

with a separate kernel ``w_p`` for every power ``p``. Stacking the powers along the
channel axis turns the whole sum into ONE ordinary convolution over ``q * C_in``
channels, which is how it is computed here. ``q = 1`` is exactly ``nn.Conv1d``.

The series only behaves when its input is bounded: callers feed inputs in
``[-1, 1]`` (a tanh before every layer, peak-normalised audio for the first).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class SelfONN1d(nn.Module):
    """1D operational layer with generative neurons of Maclaurin order ``q``.

    Args mirror ``nn.Conv1d`` (``in_channels``, ``out_channels``, ``kernel_size``,
    ``stride``, ``padding``, ``dilation``, ``bias``) plus ``q >= 1``.

    Input ``(batch, in_channels, time)`` with values in ``[-1, 1]``; output
    ``(batch, out_channels, time_out)`` with the Conv1d output length.
    ``self.weight`` has shape ``(out_channels, q * in_channels, kernel_size)``;
    input channels ``[p*C_in, (p+1)*C_in)`` hold the kernel of power ``p + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, q: int = 3, bias: bool = True):
        super().__init__()
        if q < 1:
            raise ValueError(f"q must be >= 1, got {q}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.q = q
        self.weight = nn.Parameter(torch.empty(out_channels, q * in_channels, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform as Conv1d for the linear kernel; higher powers start smaller.

        The term of power ``p`` is scaled by ``1/p`` at initialisation, so a fresh
        layer starts close to a convolution and learns its non-linearity.
        """
        fan_in = self.in_channels * self.kernel_size
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            for p in range(self.q):
                w = self.weight[:, p * self.in_channels:(p + 1) * self.in_channels]
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                if p:
                    w.mul_(1.0 / (p + 1))
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bound, bound)

    def powers(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)`` -> ``(B, q*C, T)``: ``[x, x**2, ..., x**q]`` along channels."""
        if self.q == 1:
            return x
        terms = [x]
        for _ in range(self.q - 1):
            terms.append(terms[-1] * x)
        return torch.cat(terms, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(self.powers(x), self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, q={self.q}")
