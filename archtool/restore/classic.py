"""Helpers shared by the classic (DSP) restorers: tensor <-> numpy, parameters, chunk offset.

Every classic restorer is chunk-consistent: given the same ``params`` (planned from the
whole file's analysis) and enough context on each side, processing overlapping chunks and
cropping gives the same samples as processing the whole file. Restorers that work on a
block grid (declick, decrackle, denoise, dereverb) align that grid to absolute sample
positions using ``params["chunk_offset"]``: the index, in the whole file, of the first
sample of the audio passed to ``process`` (or ``params["offset_s"]``, the same in seconds;
0 when both are absent). The engine sets it per chunk.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from archtool.errors import UsageError

OFFSET_PARAM = "chunk_offset"


def to_numpy(audio: torch.Tensor) -> np.ndarray:
    """``(C, N)`` tensor (any device) -> float64 numpy array."""
    if audio.ndim != 2:
        raise UsageError(f"restorers expect audio shaped (channels, samples), got {tuple(audio.shape)}")
    return audio.detach().to("cpu", torch.float64).numpy()


def to_tensor(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """numpy array -> tensor with the dtype and device of ``like``."""
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=like.device, dtype=like.dtype)


def chunk_offset(params: dict[str, Any], sample_rate: int) -> int:
    """Absolute sample index of the chunk's first sample (0 when not chunked): from
    ``params["chunk_offset"]`` (samples) or else ``params["offset_s"]`` (seconds)."""
    if params.get(OFFSET_PARAM) is not None:
        return int(params[OFFSET_PARAM])
    return int(round(float(params.get("offset_s", 0.0) or 0.0) * sample_rate))


def number(params: dict[str, Any], key: str, default: float, lo: float | None = None,
           hi: float | None = None) -> float:
    """A numeric parameter, checked to lie in ``[lo, hi]`` (UsageError naming it otherwise)."""
    v = params.get(key, default)
    if v is None:
        v = default
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise UsageError(f"restorer parameter {key!r} must be a number, got {v!r}") from None
    if not np.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise UsageError(f"restorer parameter {key!r}={v} is outside [{lo}, {hi}]")
    return v


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``"auto"``/None -> cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
