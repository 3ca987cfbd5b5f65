"""``declick``: remove clicks (AR-residual detection, LSAR repair, stereo-aware)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from archtool.dsp.declick import ClickSettings, declick
from archtool.restore.classic import chunk_offset, number, to_numpy, to_tensor
from archtool.restore.registry import register_restorer


def click_settings(params: dict[str, Any], base: ClickSettings) -> ClickSettings:
    """Settings from step parameters (``threshold``, ``low_threshold``, ``max_len_ms``,
    ``post_ms``, ``order``, ``passes``, ``periodic_boost``, ``short_ms``, ``long_factor``)."""
    return ClickSettings(
        threshold=number(params, "threshold", base.threshold, 2.0, 100.0),
        low_threshold=number(params, "low_threshold", base.low_threshold, 1.0, 100.0),
        order=int(number(params, "order", base.order, 4, 128)),
        max_len_ms=number(params, "max_len_ms", base.max_len_ms, 0.05, 20.0),
        post_ms=number(params, "post_ms", base.post_ms, 0.0, 5.0),
        passes=int(number(params, "passes", base.passes, 1, 5)),
        block_s=base.block_s, pre=base.pre, merge=base.merge, sub_block=base.sub_block,
        periodic_boost=number(params, "periodic_boost", base.periodic_boost, 0.0, 10.0),
        short_ms=number(params, "short_ms", base.short_ms, 0.05, 20.0),
        long_factor=number(params, "long_factor", base.long_factor, 1.0, 10.0),
    )


@register_restorer("declick")
class Declick:
    """Clicks: AR(p) residual outliers (robust refit, hysteresis, pitch-aware threshold)
    repaired by least-squares AR interpolation; one-sided clicks in stereo are repaired
    from the other channel where it is clean and coherent.

    Params: ``threshold`` (robust sigmas, default 10; lower finds more), ``max_len_ms``
    (3), ``order`` (32 at 44.1 kHz), ``passes`` (2), ``stereo_link`` (true).
    """

    name: ClassVar[str] = "declick"
    kinds: ClassVar[tuple[str, ...]] = ("clicks",)
    context_s: ClassVar[float] = 0.1
    defaults: ClassVar[ClickSettings] = ClickSettings()

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        x = to_numpy(audio)
        if x.shape[1] == 0:
            return audio.clone()
        settings = click_settings(params, self.defaults)
        y, _ = declick(x, sample_rate, settings, offset=chunk_offset(params, sample_rate),
                       stereo_link=bool(params.get("stereo_link", True)))
        return to_tensor(y, audio)
