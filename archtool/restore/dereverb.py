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
    block), its removal bounded by the late reverberation of the measured RT60.

    Params: ``rt60_s`` (the analysed RT60; None or absent: no bound, full WPE; below
    ``dry_rt60_s`` the audio is returned unchanged, and the strength rises linearly to
    full at ``dry_rt60_s + 0.15`` s), ``dry_rt60_s`` (0.25), ``taps`` (10; more for long
    RT60), ``delay`` (3 frames), ``iterations`` (1; each further iteration widens the
    audio a frame depends on, so chunked runs match whole-file runs only for 1).
    """

    name: ClassVar[str] = "dereverb"
    kinds: ClassVar[tuple[str, ...]] = ("reverb",)
    context_s: ClassVar[float] = wpe_context_s(BLOCK_S, NEIGHBOURS, 20, 3)

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        rt60 = params.get("rt60_s")
        rt60 = None if rt60 is None else number(params, "rt60_s", 0.0, 0.0, 30.0)
        strength = 1.0
        if rt60 is not None:
            dry = number(params, "dry_rt60_s", 0.25, 0.0, 5.0)
            strength = float(min(max((rt60 - dry) / 0.15, 0.0), 1.0))
            if strength <= 0.0:  # no measurable reverberation: nothing to take away
                return audio.clone()
        dev = resolve_device(device)
        taps = int(number(params, "taps", 10, 1, 20))
        y = wpe(audio.to(dev), sample_rate, taps=taps,
                delay=int(number(params, "delay", 3, 1, 10)),
                iterations=int(number(params, "iterations", 1, 1, 5)),
                block_s=BLOCK_S, neighbours=NEIGHBOURS, offset=chunk_offset(params, sample_rate),
                rt60_s=rt60).to(audio.device)
        if strength < 1.0:
            y = audio + strength * (y - audio)
        return y
