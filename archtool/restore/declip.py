"""``declip``: rebuild clipped peaks (consistent sparse reconstruction, A-SPADE)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from archtool.dsp.declip import declip
from archtool.restore.classic import chunk_offset, number, resolve_device
from archtool.restore.registry import register_restorer


@register_restorer("declip")
class Declip:
    """Clipping: samples at the clip level are rebuilt frame by frame by A-SPADE (sparse in
    an oversampled DFT, consistent: every rebuilt sample lies beyond the clip level on its
    clipped side; unclipped samples are untouched).

    Params: ``clip_level`` (from the analysis; else each channel's peak), ``max_iter``
    (150), ``eps_rel`` (0.1, stopping tolerance re the clip level), ``max_run_ms`` (10;
    longer flat runs are left alone).
    """

    name: ClassVar[str] = "declip"
    kinds: ClassVar[tuple[str, ...]] = ("clipping",)
    context_s: ClassVar[float] = 0.1

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        if audio.shape[-1] == 0:
            return audio.clone()
        level = params.get("clip_level")
        if isinstance(level, (int, float)) and not isinstance(level, bool):
            level = number(params, "clip_level", 1.0, 1e-6, 100.0)
        dev = resolve_device(device)
        y = declip(audio.to(dev), level, sample_rate,
                   max_iter=int(number(params, "max_iter", 150, 1, 2000)),
                   eps_rel=number(params, "eps_rel", 0.1, 1e-4, 10.0),
                   max_run_ms=number(params, "max_run_ms", 10.0, 0.1, 100.0),
                   offset=chunk_offset(params, sample_rate))
        return y.to(audio.device)
