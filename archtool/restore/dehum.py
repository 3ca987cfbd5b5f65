"""``dehum``: remove mains hum and buzz (fundamental and harmonics, tracking slow drift)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from archtool.dsp.dehum import dehum, hum_context_s
from archtool.restore.classic import chunk_offset, number
from archtool.restore.registry import register_restorer

SMOOTH_S, GATE_S = 0.08, 1.0


def estimate_mains(x: np.ndarray, sample_rate: int) -> float:
    """50 or 60: whichever family of harmonics (1..6) carries more narrow-band energy."""
    n = min(x.shape[-1], 1 << int(np.log2(max(sample_rate * 4, 2))))
    seg = x.mean(axis=0)[:n] * np.hanning(n)
    spec = np.abs(np.fft.rfft(seg)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)

    def score(f0: float) -> float:
        s = 0.0
        for k in range(1, 7):
            i = int(np.argmin(np.abs(freqs - k * f0)))
            lo, hi = max(0, i - 40), i + 41
            s += np.log(spec[max(0, i - 1) : i + 2].max() + 1e-20) - np.log(np.median(spec[lo:hi]) + 1e-20)
        return s

    return 50.0 if score(50.0) >= score(60.0) else 60.0


@register_restorer("dehum")
class Dehum:
    """Hum: per-harmonic tracking band-stop (demodulate, smooth, remodulate, subtract),
    gated to where the component behaves like hum.

    Params: ``fundamental_hz`` (the analysed fundamental; estimated 50/60 Hz when absent),
    ``harmonics_hz`` (list, analysed; default all harmonics up to ``max_harmonics``),
    ``max_harmonics`` (20), ``gate_db`` (10), ``cap`` (2.0).
    """

    name: ClassVar[str] = "dehum"
    kinds: ClassVar[tuple[str, ...]] = ("hum",)
    context_s: ClassVar[float] = hum_context_s(SMOOTH_S, GATE_S)
    #: filled in by the plan from the analysis when a preset leaves them out: estimated per
    #: chunk, the fundamental and harmonics would change with the engine's block size
    file_measures: ClassVar[tuple[str, ...]] = ("fundamental_hz", "harmonics_hz")

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        if audio.shape[-1] == 0:
            return audio.clone()
        f0 = params.get("fundamental_hz")
        if f0 is None:
            f0 = estimate_mains(audio.detach().cpu().double().numpy(), sample_rate)
        f0 = number({"f": f0}, "f", 50.0, 10.0, 1000.0)
        max_h = int(number(params, "max_harmonics", 20, 1, 200))
        hz = params.get("harmonics_hz")
        if hz:
            ks = sorted({int(round(float(h) / f0)) for h in hz if float(h) > 0})
            ks = [k for k in ks if 1 <= k <= max_h] or list(range(1, max_h + 1))
        else:
            ks = list(range(1, max_h + 1))
        return dehum(audio, sample_rate, f0, ks, smooth_s=SMOOTH_S, gate_s=GATE_S,
                     gate_db=number(params, "gate_db", 10.0, -20.0, 60.0),
                     cap=number(params, "cap", 2.0, 0.5, 100.0),
                     offset=chunk_offset(params, sample_rate))
