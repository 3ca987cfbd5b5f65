"""Spectrogram fragmentation (seed 001): a fraction of STFT time frames set to zero.

Seed 001 zeroes 10-70 % of the time frames of 256-sample frames with a 64-sample hop at
16 kHz; here the frame length is given in ms so any rate works. Samples covered only by
zeroed frames come out exactly zero and are labelled as gap intervals.
"""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_GAPS, Param, register_unit
from archtool.degrade.units.gaps import mask_to_intervals


@register_unit("fragment", "gaps", {
    "fraction": Param(float, 0.3, "fraction of time frames zeroed (seed 001: 0.1-0.7)", 0.0, 0.9),
    "frame_ms": Param(float, 16.0, "STFT frame length in ms (seed 001: 256 samples at 16 kHz = 16 ms)",
                      2.0, 128.0),
    "run_frames": Param(int, 1, "zeroed frames come in runs of 1..run_frames consecutive frames", 1, 256),
}, stage=STAGE_GAPS)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Zero random STFT frames (Hann window, hop = frame/4, frame t centred on sample t*hop) and
    resynthesise by weighted overlap-add.

    Frames left intact resynthesise to themselves, so the result equals the input times
    g[n] = sum_kept w^2(n - t hop) / sum_all w^2(n - t hop), which is computed directly.
    Labels ``zeroed_frame_runs`` ([[first, last+1], ...] frame indices), ``frame_length``,
    ``hop``, ``gap_intervals_s`` (exactly-zero samples) and ``fragment_fraction``.
    Severity: zeroed-frame fraction / 0.7 (seed 001's worst case), capped at 1.
    """
    c, n = audio.shape
    length = max(8, int(round(params["frame_ms"] * sample_rate / 1000)))
    length += (-length) % 4
    hop = length // 4
    frames = -(-n // hop) + 1  # as scipy.signal.stft(boundary="zeros", padded=True)
    target = int(round(params["fraction"] * frames))
    zeroed = np.zeros(frames, dtype=bool)
    guard = 0
    while zeroed.sum() < target and guard < 100 * frames:
        run = int(rng.integers(1, params["run_frames"] + 1))
        run = min(run, target - int(zeroed.sum()))
        start = int(rng.integers(0, frames - run + 1))
        zeroed[start:start + run] = True
        guard += 1
    w2 = np.sin(np.pi * np.arange(length) / length) ** 4  # periodic Hann, squared
    ratio = length // hop
    total = np.zeros(frames * hop + length)
    kept = np.zeros_like(total)
    for k in range(ratio):  # frames k, k + ratio, ... tile without overlapping
        idx = np.arange(k, frames, ratio)
        block = np.tile(w2, idx.size)
        total[k * hop: k * hop + block.size] += block
        kept[k * hop: k * hop + block.size] += block * np.repeat(~zeroed[idx], length)
    # frame t covers padded samples [t*hop, t*hop + length) = original [t*hop - half, t*hop + half)
    half = length // 2
    total, kept = total[half:half + n], kept[half:half + n]
    dead = kept == 0
    gain = np.divide(kept, total, out=np.zeros(n), where=~dead)
    y = (audio.astype(np.float64) * gain).astype(np.float32)
    runs = mask_to_intervals(zeroed, 1)
    frac = float(zeroed.mean()) if frames else 0.0
    return y, {
        "severity": float(min(1.0, frac / 0.7)), "fragment_fraction": frac, "frame_length": length, "hop": hop,
        "zeroed_frame_runs": [[int(a), int(b)] for a, b in runs],
        "gap_intervals_s": mask_to_intervals(dead, sample_rate)}
