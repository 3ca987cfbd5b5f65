"""Wow and flutter: slow and fast periodic speed deviations, applied by time-varying resampling.

The output keeps the input's length. Output time t reads the input at
p(t) = t + sum_i d_i/(2 pi f_i) (sin(2 pi f_i t + phi_i) - sin(phi_i)), i.e. playback speed
1 + sum_i d_i cos(2 pi f_i t + phi_i). The map p is recorded (``time_map``) so that
labels and references can be aligned with the output.
"""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_SPEED, Param, register_unit

TIME_MAP_STEP_S = 0.01


def read_positions(n: int, sample_rate: int, components: list[tuple[float, float, float]]) -> np.ndarray:
    """Input positions (in samples, float64) read by each of ``n`` output samples."""
    t = np.arange(n) / sample_rate
    p = t.copy()
    for depth, freq, phase in components:
        if depth > 0 and freq > 0:
            p += depth / (2 * np.pi * freq) * (np.sin(2 * np.pi * freq * t + phase) - np.sin(phase))
    return p * sample_rate


class Warp:
    """Catmull-Rom cubic reading of signals of ``n`` samples at fractional ``positions``
    (edges clamped). Indices and weights are computed once and reused for every signal."""

    def __init__(self, positions: np.ndarray, n: int):
        pos = np.clip(np.asarray(positions, dtype=np.float64), 0, n - 1)
        i = pos.astype(np.int64)
        f = pos - i
        f2 = f * f
        f3 = f2 * f
        self.index = np.clip(i[None, :] + np.arange(-1, 3)[:, None], 0, n - 1)
        self.weight = 0.5 * np.stack([-f3 + 2 * f2 - f, 3 * f3 - 5 * f2 + 2, -3 * f3 + 4 * f2 + f, f3 - f2])

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` (C, n) read at the positions: float64 (C, len(positions))."""
        x = np.asarray(audio, dtype=np.float64)
        out = x[:, self.index[0]] * self.weight[0]
        for k in range(1, 4):
            out += x[:, self.index[k]] * self.weight[k]
        return out


def warp(audio: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Read ``audio`` (C, N) at fractional ``positions`` with Catmull-Rom cubic interpolation
    (edges clamped). Returns float64 (C, len(positions))."""
    return Warp(positions, np.asarray(audio).shape[1])(audio)


@register_unit("wow", "wow", {
    "wow_depth": Param(float, 0.004, "peak relative speed deviation of the wow (0.004 = 0.4 %)", 0.0, 0.05),
    "wow_rate_hz": Param(float, 0.55, "wow rate (0.55 Hz = 33 rpm eccentricity, 1.3 Hz = 78 rpm)", 0.05, 4.0),
    "flutter_depth": Param(float, 0.0008, "peak relative speed deviation of the flutter", 0.0, 0.01),
    "flutter_rate_hz": Param(float, 8.0, "flutter rate (Hz)", 4.0, 40.0),
}, stage=STAGE_SPEED)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Time-varying resampling with random phases.

    Labels ``time_map`` = {"step_s", "input_s"}: the output instant k*step_s came from input
    time input_s[k]. Severity: (wow_depth + 3 x flutter_depth) / 0.015, capped at 1.
    """
    c, n = audio.shape
    comps = [(params["wow_depth"], params["wow_rate_hz"], float(rng.uniform(0, 2 * np.pi))),
             (params["flutter_depth"], params["flutter_rate_hz"], float(rng.uniform(0, 2 * np.pi)))]
    pos = read_positions(n, sample_rate, comps)
    reader = Warp(pos, n)
    out = reader(audio).astype(np.float32)
    step = max(1, int(round(TIME_MAP_STEP_S * sample_rate)))
    grid = np.arange(0, n, step)
    time_map = {"step_s": step / sample_rate,
                "input_s": [round(float(v), 7) for v in pos[grid] / sample_rate]}
    sev = float(min(1.0, (params["wow_depth"] + 3 * params["flutter_depth"]) / 0.015))
    return out, {"severity": sev, "time_map": time_map, "phases": [comps[0][2], comps[1][2]],
                 "_positions": pos, "_warp": reader}
