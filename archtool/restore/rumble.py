"""``derumble`` (gentle zero-phase high-pass below the programme) and ``dc_remove``."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt

from archtool.restore.classic import number, to_numpy, to_tensor
from archtool.restore.registry import register_restorer


def highpass(x: np.ndarray, sample_rate: int, cutoff_hz: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth high-pass of ``x`` ``(C, N)``: order ``order`` run forwards and
    backwards (-6 dB at ``cutoff_hz``, 4 x order dB/octave below). Padding is by even
    reflection of at most one second (even extension: no edge transient)."""
    cutoff = min(max(cutoff_hz, 1.0), 0.45 * sample_rate)
    sos = butter(order, cutoff, btype="highpass", fs=sample_rate, output="sos")
    pad = int(min(x.shape[-1] - 1, sample_rate))
    if pad < 1:
        return x.copy()
    return sosfiltfilt(sos, x, axis=-1, padtype="even", padlen=pad)


@register_restorer("derumble")
class Derumble:
    """Rumble: zero-phase Butterworth high-pass (order 4 run both ways: -6 dB at the cutoff,
    48 dB/octave below it, flat within 0.1 dB an octave above).

    Params: ``cutoff_hz`` (the analysed rumble band edge; default 30 Hz; clamped to 10-120 Hz),
    ``order`` (4).
    """

    name: ClassVar[str] = "derumble"
    kinds: ClassVar[tuple[str, ...]] = ("rumble",)
    context_s: ClassVar[float] = 0.5

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        if audio.shape[-1] < 2:
            return audio.clone()
        cutoff = number(params, "cutoff_hz", 30.0, 1.0, 20000.0)
        cutoff = float(np.clip(cutoff, 10.0, 120.0))
        order = int(number(params, "order", 4, 1, 8))
        return to_tensor(highpass(to_numpy(audio), sample_rate, cutoff, order), audio)


@register_restorer("dc_remove")
class DCRemove:
    """DC offset: subtract the analysed per-channel ``offset`` (a number or a list), which
    keeps chunks consistent; without it, a 5 Hz first-order zero-phase high-pass."""

    name: ClassVar[str] = "dc_remove"
    kinds: ClassVar[tuple[str, ...]] = ("dc_offset",)
    context_s: ClassVar[float] = 0.5

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        offset = params.get("offset")
        if offset is None:
            if audio.shape[-1] < 2:
                return audio.clone()
            return to_tensor(highpass(to_numpy(audio), sample_rate, 5.0, 1), audio)
        off = np.atleast_1d(np.asarray(offset, dtype=np.float64))
        if off.size not in (1, audio.shape[0]):
            off = np.full(audio.shape[0], float(off.mean()))
        return audio - torch.as_tensor(off, dtype=audio.dtype, device=audio.device).reshape(-1, 1)
