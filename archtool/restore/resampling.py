"""Rate changes around a model that runs at its own sample rate (Op-GAN, diffusion)."""
from __future__ import annotations

import math

import torch
import torchaudio


def resample(x: torch.Tensor, src: int, dst: int) -> torch.Tensor:
    """``x`` ``(..., N)`` from ``src`` Hz to ``dst`` Hz (unchanged when the rates are equal)."""
    return x if src == dst else torchaudio.functional.resample(x, src, dst)


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """Trim or zero-pad the last axis to ``n`` samples."""
    return x[..., :n] if x.shape[-1] >= n else torch.nn.functional.pad(x, (0, n - x.shape[-1]))


def grid_pad(offset: int, src: int, dst: int, grid: int = 1) -> tuple[int, int]:
    """Zeros to put before a chunk that starts at file sample ``offset`` (at ``src`` Hz) so that
    the model sees the file's own sample grid: ``(before, after)``, zeros at ``src`` Hz before
    resampling and at ``dst`` Hz after it.

    With them the chunk, resampled, starts on a ``dst``-Hz sample of the whole file (the
    polyphase filter then takes the same phases as a whole-file pass) whose index is a
    multiple of ``grid`` (a model's segment or STFT hop), so a chunk's output away from its
    edges equals the whole file's. The file index of the padded ``dst``-Hz signal's first
    sample is ``(offset - before) * dst // src - after``."""
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    g = math.gcd(src, dst)
    before = offset % (src // g)
    start = (offset - before) // (src // g) * (dst // g)
    return before, start % max(1, int(grid))
