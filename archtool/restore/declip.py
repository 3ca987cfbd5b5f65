"""``declip``: rebuild clipped peaks (constrained LSAR)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from archtool.dsp.declip import declip
from archtool.restore.classic import number, to_numpy, to_tensor
from archtool.restore.registry import register_restorer


@register_restorer("declip")
class Declip:
    """Clipping: flat-topped runs at the clip level are re-interpolated by least-squares AR,
    pinned to lie beyond the clip level (consistent declipping).

    Params: ``clip_level`` (from the analysis; else each channel's peak), ``order`` (32 at
    44.1 kHz), ``rounds`` (3), ``max_run_ms`` (10).
    """

    name: ClassVar[str] = "declip"
    kinds: ClassVar[tuple[str, ...]] = ("clipping",)
    context_s: ClassVar[float] = 0.05

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        if audio.shape[-1] == 0:
            return audio.clone()
        level = params.get("clip_level")
        if isinstance(level, (int, float)) and not isinstance(level, bool):
            level = number(params, "clip_level", 1.0, 1e-6, 100.0)
        y = declip(to_numpy(audio), level, sample_rate,
                   order=int(number(params, "order", 32, 4, 128)),
                   rounds=int(number(params, "rounds", 3, 1, 10)),
                   max_run_ms=number(params, "max_run_ms", 10.0, 0.1, 100.0))
        return to_tensor(y, audio)
