"""A constant DC offset, as left by an ill-adjusted converter or preamp."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_DC, Param, register_unit


@register_unit("dc_offset", "dc_offset", {
    "offset": Param(float, 0.02, "offset added to every sample (full scale = 1)", -0.3, 0.3),
}, stage=STAGE_DC)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Add a constant offset. Severity: |offset| / 0.05, capped at 1."""
    out = (audio.astype(np.float64) + params["offset"]).astype(np.float32)
    return out, {"severity": float(min(1.0, abs(params["offset"]) / 0.05)), "offset": params["offset"]}
