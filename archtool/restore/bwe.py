"""Restorer ``bwe``: conservative learned bandwidth extension for the ``bandlimit`` kind.

Above the analysed cutoff (``params["cutoff_hz"]``, the bandlimit finding's measure;
estimated from the audio when absent) a :class:`~archtool.models.bwe.BandwidthExtender`
generates the missing band. The input is never re-synthesised: the output is
``input + extension`` where every FFT bin of the extension below the cutoff is zeroed
(float64), so the original band is kept to float rounding and ``gain = 0`` returns the
input unchanged. ``params``:

* ``cutoff_hz`` (float): where the content stops; extension starts there;
* ``gain`` (float, default 1): level of the generated band (0 = off); ``bwe_gain`` (the
  restore command's ``--bwe-gain``) overrides it;
* ``content`` (``auto`` | ``speech`` | ``music``): which model; the speech models (trained
  at 16 kHz, factors 2 and 4) serve speech and ``auto`` at rates up to 16 kHz, the music
  model (trained at 22.05 and 44.1 kHz) everything else;
* ``seed`` (int, default 0): the random phases of the noise excitation.

Also the library functions :func:`extend_bandwidth` (numpy in, numpy out) and
:func:`super_resolve` (rate change then extension).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import signal

from archtool.errors import UsageError
from archtool.models.bwe import (BandwidthExtender, BweConfig, effective_cutoff_hz, frame_phases, highpass_exact,
                                 stft_sizes)
from archtool.models.checkpoint import load_model
from archtool.restore.registry import register_restorer

PACKAGED = {"speech_x2": "bwe_speech_x2.pt", "speech_x4": "bwe_speech_x4.pt", "music": "bwe_music.pt"}


def load_extender(name_or_path: str) -> BandwidthExtender:
    """A packaged model (``speech_x2``, ``speech_x4``, ``music``) or a checkpoint path; cached."""
    return load_model(name_or_path, packaged=PACKAGED, expected_model="bandwidth_extender",
                      build=lambda meta: BandwidthExtender(BweConfig(**meta["arch"])), what="bandwidth-extension")


def choose_model(rate: int, cutoff_hz: float, content: str = "auto") -> str:
    """Packaged model name for ``content`` at ``rate`` with content up to ``cutoff_hz``."""
    if content not in ("auto", "speech", "music"):
        raise UsageError(f"bwe content {content!r}: one of auto, speech, music")
    if content == "music" or rate > 16800:
        return "music"  # the speech models were trained at 16 kHz only
    return "speech_x4" if cutoff_hz <= 0.1875 * rate else "speech_x2"


def extend_bandwidth(audio: np.ndarray, rate: int, cutoff_hz: float | None = None, gain: float = 1.0,
                     content: str = "auto", seed: int = 0, model: str | None = None,
                     offset: int = 0) -> np.ndarray:
    """Generate the band above ``cutoff_hz`` of ``audio`` ``(C, N)`` float32; same shape.

    Below the cutoff the output equals the input (to float rounding); ``gain`` scales
    the generated band. ``cutoff_hz`` None: estimated with
    :func:`~archtool.models.bwe.effective_cutoff_hz`. ``offset`` is the position (samples)
    of ``audio`` in a longer file: the STFT grid and the noise phases follow absolute
    positions, so overlapping chunks generate the same band where they overlap (up to
    the network's context).
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
    if gain < 0:
        raise UsageError(f"bwe gain {gain}: must be >= 0 (0 turns extension off)")
    nyq = rate / 2
    if cutoff_hz is None:
        cutoff_hz = effective_cutoff_hz(audio, rate)
    cutoff_hz = float(cutoff_hz)
    if gain == 0 or audio.shape[-1] < 64 or cutoff_hz >= 0.95 * nyq or cutoff_hz < 500.0:
        return audio.copy()
    extender = load_extender(model or choose_model(rate, cutoff_hz, content))
    n_fft, hop = stft_sizes(rate)
    lead = int(offset) % hop
    padded = np.pad(audio, ((0, 0), (lead, 0)))
    n_frames = padded.shape[-1] // hop + 1
    phase = frame_phases((int(offset) - lead) // hop, n_frames, n_fft // 2 + 1, int(seed))
    with torch.no_grad():
        parts = extender(torch.from_numpy(padded), rate, cutoff_hz, gain=float(gain), phase=phase,
                         return_parts=True)
    ext = highpass_exact(parts["extension"].numpy()[:, lead:], rate, cutoff_hz)
    return (audio.astype(np.float64) + ext).astype(np.float32)


def super_resolve(audio: np.ndarray, rate_in: int, rate_out: int, gain: float = 1.0,
                  content: str = "speech", seed: int = 0, model: str | None = None) -> np.ndarray:
    """Upsample ``audio`` ``(C, N)`` from ``rate_in`` to ``rate_out`` (windowed sinc) and
    generate the band above the input's effective cutoff; returns ``(C, N')`` at ``rate_out``."""
    if rate_out <= rate_in:
        raise UsageError(f"super-resolution needs rate_out > rate_in (got {rate_in} -> {rate_out})")
    frac = Fraction(rate_out, rate_in)
    up = signal.resample_poly(np.asarray(audio, np.float64), frac.numerator, frac.denominator, axis=-1)
    up = up.astype(np.float32)
    cut = effective_cutoff_hz(up, rate_out, rate_in / 2)
    cut = float(np.clip(cut, 0.7 * rate_in / 2, 0.97 * rate_in / 2))
    if model is None and content == "speech":
        model = "speech_x4" if rate_out >= 3.5 * rate_in else "speech_x2"
    return extend_bandwidth(up, rate_out, cut, gain, content, seed, model)


@register_restorer("bwe")
class BandwidthExtension:
    """Learned, conservative bandwidth extension (see the module docstring)."""

    name: ClassVar[str] = "bwe"
    kinds: ClassVar[tuple[str, ...]] = ("bandlimit",)
    context_s: ClassVar[float] = 1.0  # about the envelope network's receptive field

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        gain = float(params.get("bwe_gain", params.get("gain", 1.0)))
        cutoff = params.get("cutoff_hz")
        offset = params.get("chunk_offset")
        if offset is None:
            offset = round(float(params.get("offset_s", 0.0)) * sample_rate)
        out = extend_bandwidth(audio.detach().cpu().numpy(), int(sample_rate),
                               None if cutoff is None else float(cutoff), gain,
                               str(params.get("content", "auto")), int(params.get("seed", 0)),
                               params.get("model"), int(offset))
        return torch.from_numpy(out).to(device=audio.device, dtype=audio.dtype)
