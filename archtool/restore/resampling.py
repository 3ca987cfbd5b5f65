"""Rate changes around a model that runs at its own sample rate (Op-GAN, diffusion)."""
from __future__ import annotations

import torch
import torchaudio


def resample(x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """``x`` ``(..., N)`` from ``src`` Hz to ``dst`` Hz (unchanged when the rates are equal)."""
    return x if src == dst else torchaudio.functional.resample(x, src, dst)


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """Trim or zero-pad the last axis to ``n`` samples."""
    return x[..., :n] if x.shape[-1] >= n else torch.nn.functional.pad(x, (0, n - x.shape[-1]))
