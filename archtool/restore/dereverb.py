"""``dereverb``: weighted prediction error dereverberation (torch, CPU or GPU)."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from archtool.dsp.wpe import wpe, wpe_context_s
from archtool.restore.classic import chunk_offset, number, resolve_device
from archtool.restore.registry import register_restorer

BLOCK_S, NEIGHBOURS = 1.0, 2


@register_restorer("dereverb")
class Dereverb:
    """Reverberation: block-local WPE (filters from +-2 s of statistics around each 1 s
    block). Params: ``taps`` (10; more for long RT60), ``delay`` (3 frames),
    ``iterations`` (1; each further iteration widens the audio a frame depends on, so
    chunked runs match whole-file runs only for 1)."""

    name: ClassVar[str] = "dereverb"
    kinds: ClassVar[tuple[str, ...]] = ("reverb",)
    context_s: ClassVar[float] = wpe_context_s(BLOCK_S, NEIGHBOURS, 20, 3)

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        dev = resolve_device(device)
        taps = int(number(params, "taps", 10, 1, 20))
        y = wpe(audio.to(dev), sample_rate, taps=taps,
                delay=int(number(params, "delay", 3, 1, 10)),
                iterations=int(number(params, "iterations", 1, 1, 5)),
                block_s=BLOCK_S, neighbours=NEIGHBOURS, offset=chunk_offset(params, sample_rate))
        return y.to(audio.device)
