"""Restorer ``bwe``: conservative learned bandwidth extension for the ``bandlimit`` kind.

Above the analysed cutoff (``params["cutoff_hz"]``, the bandlimit finding's measure;
estimated per segment from the audio when absent) a
:class:`~archtool.models.bwe.BandwidthExtender` generates the missing band. The input is
never re-synthesised: the output is ``input + extension``, the extension high-passed by a
linear-phase FIR (:func:`~archtool.models.bwe.highpass_fir`, stop band below the cutoff
attenuated by 150 dB), so the original band is kept to float rounding and ``gain = 0``
returns the input unchanged.

Block-size invariance: the model runs on fixed segments of :data:`SEGMENT_S` seconds on a
grid anchored to the **file** (``params["chunk_offset"]``; segment ``k`` starts at
``k * (SEGMENT_S - OVERLAP_S)`` seconds, rounded to whole STFT hops), one segment at a time.
The level the network works relative to is measured over the segment and
:data:`REF_SIDE_S` of the signal on each side (so a quiet passage keeps the level of the
music around it, as a whole-file reference would). Each segment's extension is windowed
(sine-squared crossfades of :data:`OVERLAP_S` that sum to one), high-passed in full and
added in segment order, so an output sample depends only on the signal within
:attr:`BandwidthExtension.context_s` of it and the chunk it was computed in does not
matter: the samples are identical, to the bit, whatever the engine's block size.

``params``:

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
from archtool.models.bwe import (BandwidthExtender, BweConfig, effective_cutoff_hz, frame_phases, highpass_fir,
                                 highpass_taps, stft_sizes)
from archtool.models.checkpoint import load_model
from archtool.restore.registry import register_restorer

PACKAGED = {"speech_x2": "bwe_speech_x2.pt", "speech_x4": "bwe_speech_x4.pt", "music": "bwe_music.pt"}
SEGMENT_S = 1.0   # model segment (the length of the training crops)
OVERLAP_S = 0.25  # crossfade between neighbouring segments
REF_SIDE_S = 2.0  # the level reference of a segment is measured over it and this much each side
FIR_CONTEXT_S = 0.1  # more than the high-pass's length plus the edge ramp (~25 ms + ~25 ms + 10 ms):
# a segment that meets a chunk's faded ends then never reaches the chunk's core
EDGE_RAMP_S = 0.01  # fade of the extension in from a signal's start and out to its end


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


def segment_grid(n: int, rate: int, offset: int = 0) -> tuple[int, int, list[int]]:
    """``(length, overlap, starts)`` of the extension segments at ``rate`` (samples): every
    grid segment meeting ``[offset, offset + n)``, by absolute start. Lengths and starts are
    whole STFT hops, so overlapping segments share STFT frames (and noise phases)."""
    _, hop = stft_sizes(rate)
    length = hop * int(round(SEGMENT_S * rate / hop))
    overlap = hop * int(round(OVERLAP_S * rate / hop))
    step = length - overlap
    first = max(0, (offset - length) // step + 1)
    last = max(first, (offset + n - 1) // step)
    return length, overlap, [k * step for k in range(first, last + 1)]


def _crossfade(length: int, overlap: int, first: bool) -> np.ndarray:
    """``(length,)`` float64: sine-squared fade-in and cosine-squared fade-out over
    ``overlap`` samples (neighbours sum to one); the file's first segment starts at one."""
    w = np.ones(length)
    ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
    if not first:
        w[:overlap] = ramp
    w[length - overlap:] = ramp[::-1]
    return w


def _edge_taper(n: int, half: int, ramp: int) -> np.ndarray:
    """``(n,)`` float64: zero within ``half`` samples of either end, raised-cosine up to one
    over the next ``ramp`` samples. Applied to the extension before the high-pass of
    half-length ``half``, it keeps the filtered extension inside the ``n`` samples, so the
    input's band below the cutoff is kept over the whole signal, not only away from its
    ends. At a chunk's ends it touches only the engine's context."""
    t = np.minimum(np.arange(n), np.arange(n)[::-1]) - half
    return np.where(t < 0, 0.0, np.sin(0.5 * np.pi * np.clip((t + 0.5) / ramp, 0.0, 1.0)) ** 2)


def _reference(extender: BandwidthExtender, window: np.ndarray, rate: int, cutoff_hz: float) -> torch.Tensor:
    """The level reference ``(1, 1, 1)`` of a segment, measured over ``window`` ``(1, n)``
    (the segment and up to :data:`REF_SIDE_S` each side, as in the model's own reference)."""
    n_fft, _ = stft_sizes(rate)
    cut = torch.tensor([min(max(float(cutoff_hz), 2 * rate / n_fft), rate / 2)])
    return extender.reference_level(extender.stft(torch.from_numpy(np.ascontiguousarray(window)), rate), rate, cut)


def extend_bandwidth(audio: np.ndarray, rate: int, cutoff_hz: float | None = None, gain: float = 1.0,
                     content: str = "auto", seed: int = 0, model: str | None = None,
                     offset: int = 0) -> np.ndarray:
    """Generate the band above ``cutoff_hz`` of ``audio`` ``(C, N)`` float32; same shape.

    Below the cutoff the output equals the input (to float rounding); ``gain`` scales
    the generated band. ``cutoff_hz`` None: estimated per segment with
    :func:`~archtool.models.bwe.effective_cutoff_hz`. ``offset`` is the position (samples)
    of ``audio`` in a longer file: segments, STFT frames and noise phases follow absolute
    positions, so an output sample more than :attr:`BandwidthExtension.context_s` from
    both ends of ``audio`` is the same, to the bit, as in a run on the whole file.
    """
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {audio.shape}")
    if gain < 0:
        raise UsageError(f"bwe gain {gain}: must be >= 0 (0 turns extension off)")
    channels, n = audio.shape
    if gain == 0 or n < 64:
        return audio.copy()
    offset = int(offset)
    length, overlap, starts = segment_grid(n, rate, offset)
    n_fft, hop = stft_sizes(rate)
    half = (len(highpass_taps(int(rate), 1000.0)) - 1) // 2  # same length for every cutoff
    side = int(round(REF_SIDE_S * rate))
    pad = length + half + side
    padded = np.zeros((channels, n + 2 * pad), np.float32)
    padded[:, pad:pad + n] = audio
    acc = np.zeros((channels, n + 2 * pad), np.float64)
    edge = np.zeros(n + 2 * pad)
    edge[pad:pad + n] = _edge_taper(n, half, max(1, int(EDGE_RAMP_S * rate)))
    for a in starts:
        lo = a - offset + pad
        seg = padded[:, lo:lo + length]
        cut = effective_cutoff_hz(seg, rate) if cutoff_hz is None else float(cutoff_hz)
        if cut >= 0.95 * rate / 2 or cut < 500.0 or not np.any(seg):
            continue
        extender = load_extender(model or choose_model(rate, cut, content))
        phase = frame_phases(a // hop, length // hop + 1, n_fft // 2 + 1, int(seed))
        ref_lo, ref_hi = max(pad, lo - side), min(pad + n, lo + length + side)  # real samples only
        win = _crossfade(length, overlap, first=a == 0)
        for c in range(channels):  # one item per call: the same arithmetic in every chunk
            with torch.no_grad():
                ref = _reference(extender, padded[c:c + 1, ref_lo:ref_hi], rate, cut)
                parts = extender(torch.from_numpy(np.ascontiguousarray(seg[c:c + 1])), rate, cut,
                                 gain=float(gain), phase=phase, return_parts=True, ref=ref)
            e = parts["extension"].numpy()[0].astype(np.float64) * win * edge[lo:lo + length]
            ext = highpass_fir(e, rate, cut)
            acc[c, lo - half:lo + length + half] += ext
    return (audio.astype(np.float64) + acc[:, pad:pad + n]).astype(np.float32)


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
    # an output sample depends on the segments whose span, widened by the high-pass's
    # half-length, covers it; they and their reference windows must lie inside the chunk
    # with its context
    context_s: ClassVar[float] = SEGMENT_S + REF_SIDE_S + FIR_CONTEXT_S

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
