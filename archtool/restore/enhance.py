"""Restorer ``enhance``: phone-to-studio enhancement (seed 004) with the two-stage network.

The signal is cut into segments of :data:`SEGMENT_S` seconds on a grid fixed to the
**file** (``params["chunk_offset"]``), overlapping by :data:`OVERLAP_S` with raised-cosine
crossfades whose sum is one. Each segment is handled on its own: brought to 16 kHz, its
phone-band edge estimated (unless ``cutoff_hz`` is given), passed through
:class:`~archtool.models.enhance.PhoneEnhancer` (stage 1: per-bin mask denoising; stage 2:
generation of the band above the edge up to 8 kHz, random phases seeded by ``seed`` and
the segment's index), brought back to the input rate and, above 16 kHz, extended from
7.6 kHz up by the bandwidth extender (its music model). Because an output sample depends
only on the segments around it, a chunk processed with :attr:`PhoneEnhance.context_s` of
context on each side gives the same samples as the whole file (to float rounding).

``params``: ``cutoff_hz`` (upper edge of the phone band, Hz; estimated per segment between
2.5 and 7.8 kHz when absent), ``gain`` / ``bwe_gain`` (level of the generated bands,
default 1; 0 = none), ``strength`` (stage 1's gain in dB is scaled by it; 0 = stage 1
off, default 1), ``extend`` (bool, default true: extension above 8 kHz at higher rates),
``model``, ``seed``. Output has the input's shape; unlike ``bwe`` this restorer
re-synthesises the whole signal (it denoises and equalises the known band too).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import signal

from archtool.errors import UsageError
from archtool.models.bwe import effective_cutoff_hz
from archtool.models.checkpoint import load_model
from archtool.models.enhance import MODEL_RATE, EnhanceConfig, PhoneEnhancer
from archtool.models.overlap_add import synthesis_window
from archtool.restore.bwe import extend_bandwidth
from archtool.restore.classic import chunk_offset
from archtool.restore.registry import register_restorer

PACKAGED = {"phone": "enhance_phone.pt"}
SEGMENT_S = 3.0   # segment length; a whole number of seconds keeps 16 kHz lengths exact
OVERLAP_S = 0.5   # crossfade between neighbouring segments
BATCH = 1         # segments per network call: one, so each is computed alike in every chunk


def load_enhancer(name_or_path: str = "phone") -> PhoneEnhancer:
    """The packaged ``phone`` enhancer or a checkpoint path; cached per process."""
    return load_model(name_or_path, packaged=PACKAGED, expected_model="phone_enhancer_v2",
                      build=lambda meta: PhoneEnhancer(EnhanceConfig(**meta["arch"])), what="phone-enhancer")


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    frac = Fraction(rate_out, rate_in)
    return signal.resample_poly(x, frac.numerator, frac.denominator, axis=-1)


def segment_grid(n: int, rate: int, offset: int = 0) -> tuple[int, int, list[int]]:
    """``(length, overlap, starts)``: segment length and overlap in samples at ``rate`` and
    the absolute start of every grid segment that meets ``[offset, offset + n)``.
    Segment ``k`` starts at ``k * (length - overlap) - overlap``."""
    length = int(round(SEGMENT_S * rate))
    overlap = int(round(OVERLAP_S * rate))
    hop = length - overlap
    first = max(0, (offset + overlap - length) // hop + 1)
    last = (offset + n - 1 + overlap) // hop
    return length, overlap, [k * hop - overlap for k in range(first, last + 1)]


def enhance_with(net: PhoneEnhancer, audio: np.ndarray, rate: int, cutoff_hz: float | None = None,
                 gain: float = 1.0, strength: float = 1.0, extend: bool = True, seed: int = 0,
                 offset: int = 0) -> np.ndarray:
    """Enhance ``audio`` ``(C, N)`` float32 at ``rate`` with ``net``; returns ``(C, N)``.

    ``offset`` is the absolute position (samples) of ``audio`` in its file: the segment
    grid, the noise phases and therefore the output follow absolute positions.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
    if gain < 0 or strength < 0:
        raise UsageError(f"enhance gain {gain} / strength {strength}: must be >= 0")
    channels, n = audio.shape
    if n < 64:
        return audio.copy()
    length, overlap, starts = segment_grid(n, rate, offset)
    hop = length - overlap
    win = synthesis_window(length, "tukey", taper=overlap).numpy().astype(np.float64)
    padded = np.zeros((channels, n + 2 * length), np.float64)
    padded[:, length:length + n] = audio
    segs16, cuts, keys = [], [], []
    for a in starts:
        lo = a - offset + length
        for c in range(channels):
            seg16 = _resample(padded[c, lo:lo + length], rate, MODEL_RATE).astype(np.float32)
            cut = cutoff_hz
            if cut is None:
                cut = effective_cutoff_hz(seg16, MODEL_RATE, 7800.0)
            segs16.append(seg16)
            cuts.append(float(np.clip(cut, 2500.0, 7800.0)))
            keys.append((a + overlap) // hop)
    out16 = []
    n_fft = net.extender.stft(torch.zeros(1, 1024), MODEL_RATE).shape[1]
    with torch.no_grad():
        for i in range(0, len(segs16), BATCH):
            x = torch.from_numpy(np.stack(segs16[i:i + BATCH]))
            frames = x.shape[-1] // (MODEL_RATE * 8 // 1000) + 1
            phase = torch.cat([torch.rand((1, n_fft, frames), generator=torch.Generator().manual_seed(
                (int(seed) % 2 ** 31 * 1_000_003 + int(k)) % 2 ** 63)) * (2 * np.pi) for k in keys[i:i + BATCH]])
            y = net(x, torch.tensor(cuts[i:i + BATCH]), gain=float(gain), strength=float(strength), phase=phase)
            out16.extend(y.numpy().astype(np.float64))
    acc = np.zeros_like(padded)
    norm = np.zeros(padded.shape[-1])
    j = 0
    for a in starts:
        lo = a - offset + length
        for c in range(channels):
            y = _resample(out16[j], MODEL_RATE, rate)[:length]
            y = np.pad(y, (0, length - len(y)))
            if extend and rate > MODEL_RATE * 1.05 and gain > 0:
                y = extend_bandwidth(y[None].astype(np.float32), rate, 0.95 * MODEL_RATE / 2, gain,
                                     "speech", seed, offset=a)[0].astype(np.float64)
            acc[c, lo:lo + length] += win * y
            j += 1
        norm[lo:lo + length] += win
    out = acc[:, length:length + n] / np.maximum(norm[length:length + n], 1e-6)
    return out.astype(np.float32)


def enhance_phone(audio: np.ndarray, rate: int, cutoff_hz: float | None = None, gain: float = 1.0,
                  strength: float = 1.0, extend: bool = True, seed: int = 0, model: str = "phone",
                  offset: int = 0) -> np.ndarray:
    """Enhance phone-quality speech ``audio`` ``(C, N)`` float32 at ``rate`` with the packaged
    (or given) model; same shape. See :func:`enhance_with` and the module docstring."""
    return enhance_with(load_enhancer(model), audio, rate, cutoff_hz, gain, strength, extend, seed, offset)


@register_restorer("enhance")
class PhoneEnhance:
    """Two-stage learned phone-to-studio enhancement (see the module docstring)."""

    name: ClassVar[str] = "enhance"
    kinds: ClassVar[tuple[str, ...]] = ("noise", "bandlimit")
    context_s: ClassVar[float] = SEGMENT_S  # an output sample depends on the segments around it

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        cutoff = params.get("cutoff_hz")
        out = enhance_phone(audio.detach().cpu().numpy(), int(sample_rate),
                            None if cutoff is None else float(cutoff),
                            float(params.get("bwe_gain", params.get("gain", 1.0))),
                            float(params.get("strength", 1.0)), bool(params.get("extend", True)),
                            int(params.get("seed", 0)), str(params.get("model", "phone")),
                            chunk_offset(params, int(sample_rate)))
        return torch.from_numpy(out).to(device=audio.device, dtype=audio.dtype)
