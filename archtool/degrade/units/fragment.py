"""Spectrogram fragmentation (seed 001): a fraction of STFT time frames set to zero.

Seed 001 zeroes 10-70 % of the time frames of 256-sample frames with a 64-sample hop at
16 kHz; here the frame length is given in ms so any rate works. Samples covered only by
zeroed frames come out exactly zero and are labelled as gap intervals.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import istft, stft

from archtool.degrade.base import STAGE_GAPS, Param, register_unit
from archtool.degrade.units.gaps import mask_to_intervals


@register_unit("fragment", "gaps", {
    "fraction": Param(float, 0.3, "fraction of time frames zeroed (seed 001: 0.1-0.7)", 0.0, 0.9),
    "frame_ms": Param(float, 16.0, "STFT frame length in ms (seed 001: 256 samples at 16 kHz = 16 ms)",
                      2.0, 128.0),
    "run_frames": Param(int, 1, "zeroed frames come in runs of 1..run_frames consecutive frames", 1, 256),
}, stage=STAGE_GAPS)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Zero random STFT frames (hop = frame/4, Hann window) and resynthesise.

    Labels ``zeroed_frame_runs`` ([[first, last+1], ...] frame indices; frame t is centred on
    sample t*hop), ``frame_length``, ``hop``, ``gap_intervals_s`` (exactly-zero samples) and
    ``fragment_fraction``. Severity: zeroed-frame fraction / 0.7 (seed 001's worst case), capped at 1.
    """
    c, n = audio.shape
    length = max(8, int(round(params["frame_ms"] * sample_rate / 1000)))
    length += length % 2
    hop = length // 4
    _, _, spec = stft(audio.astype(np.float64), nperseg=length, noverlap=length - hop, window="hann",
                      boundary="zeros", padded=True, axis=-1)
    frames = spec.shape[-1]
    target = int(round(params["fraction"] * frames))
    zeroed = np.zeros(frames, dtype=bool)
    guard = 0
    while zeroed.sum() < target and guard < 100 * frames:
        run = int(rng.integers(1, params["run_frames"] + 1))
        run = min(run, target - int(zeroed.sum()))
        start = int(rng.integers(0, frames - run + 1))
        zeroed[start:start + run] = True
        guard += 1
    spec[..., zeroed] = 0
    _, y = istft(spec, nperseg=length, noverlap=length - hop, window="hann", boundary=True, time_axis=-1,
                 freq_axis=-2)
    y = y[:, :n]
    if y.shape[1] < n:
        y = np.pad(y, ((0, 0), (0, n - y.shape[1])))
    # live[s] > 0 where some kept frame has non-zero window weight on sample s
    live = np.zeros(n + length + 1, dtype=np.int64)
    kept = np.flatnonzero(~zeroed)
    starts = np.clip(kept * hop - length // 2 + 1, 0, n)
    ends = np.clip(kept * hop + length // 2, 0, n)
    np.add.at(live, starts, 1)
    np.add.at(live, ends, -1)
    dead = np.cumsum(live)[:n] <= 0
    y[:, dead] = 0.0
    runs = mask_to_intervals(zeroed, 1)
    frac = float(zeroed.mean()) if frames else 0.0
    return y.astype(np.float32), {
        "severity": float(min(1.0, frac / 0.7)), "fragment_fraction": frac, "frame_length": length, "hop": hop,
        "zeroed_frame_runs": [[int(a), int(b)] for a, b in runs],
        "gap_intervals_s": mask_to_intervals(dead, sample_rate)}
