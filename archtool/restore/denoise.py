"""``denoise``: stationary noise / hiss / surface noise by MMSE-LSA STFT suppression."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from archtool.dsp.denoise import denoise, noise_psd_for, stft_sizes
from archtool.restore.classic import chunk_offset, number
from archtool.restore.registry import register_restorer


@register_restorer("denoise")
class Denoise:
    """Noise: MMSE log-spectral amplitude gain with decision-directed a-priori SNR, a-priori
    SNR floor against musical noise, and a maximum reduction.

    Params: ``noise_psd`` + ``noise_psd_n_fft`` (from the analysis; estimated from the audio
    when absent), ``max_reduction_db`` (18), ``noise_scale`` (1.0, over-subtraction),
    ``alpha`` (0.98), ``xi_min_db`` (-20).
    """

    name: ClassVar[str] = "denoise"
    kinds: ClassVar[tuple[str, ...]] = ("noise", "surface_noise", "background")
    context_s: ClassVar[float] = 0.5
    #: measures the plan passes from the analysis when a preset does not set them: a noise
    #: spectrum estimated per chunk would change with the engine's block size (-17 dB of
    #: difference between 3.7 s blocks and one pass on music) and could step at block edges
    file_measures: ClassVar[tuple[str, ...]] = ("noise_psd", "noise_psd_n_fft")

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        n_fft, _ = stft_sizes(sample_rate)
        psd = params.get("noise_psd")
        lam = None
        if psd:
            src_n = int(number(params, "noise_psd_n_fft", 2 * (len(psd) - 1), 8, 1 << 20))
            lam = noise_psd_for(psd, src_n, n_fft)
        return denoise(audio, sample_rate, noise_psd=lam,
                       max_reduction_db=number(params, "max_reduction_db", 18.0, 0.0, 60.0),
                       alpha=number(params, "alpha", 0.98, 0.5, 0.999),
                       xi_min_db=number(params, "xi_min_db", -20.0, -40.0, 0.0),
                       noise_scale=number(params, "noise_scale", 1.0, 0.1, 10.0),
                       offset=chunk_offset(params, sample_rate))
