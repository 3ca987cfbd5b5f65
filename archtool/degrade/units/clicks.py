"""Clicks: isolated impulsive disturbances (dust, scratches) at Poisson-distributed times."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, register_unit

SHAPES = ("spike", "bipolar", "damped")


def click_shape(shape: str, width: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One click waveform of ``width`` samples with peak |1|."""
    width = max(1, int(width))
    t = np.arange(width)
    if width == 1:
        return np.ones(1)
    if shape == "spike":
        w = np.sin(np.pi * (t + 0.5) / width) ** 0.5 * np.exp(-3.0 * t / width)
    elif shape == "bipolar":
        w = np.sin(2 * np.pi * (t + 0.5) / width)
    else:  # damped oscillation between 1 and 6 kHz
        f = min(rng.uniform(1000, 6000), sample_rate * 0.45)
        w = np.exp(-5.0 * t / width) * np.cos(2 * np.pi * f * t / sample_rate)
    return w / max(np.max(np.abs(w)), 1e-12)


def impulse_events(n: int, sample_rate: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted Poisson event positions (sample indices) at ``rate_hz`` over ``n`` samples."""
    count = int(rng.poisson(rate_hz * n / sample_rate))
    return np.sort(rng.integers(0, max(n, 1), count))


@register_unit("clicks", "clicks", {
    "rate_hz": Param(float, 2.0, "mean clicks per second (Poisson)", 0.0, 100.0),
    "amp_min": Param(float, 0.1, "smallest click peak, relative to the signal's peak", 0.001, 4.0),
    "amp_max": Param(float, 0.8, "largest click peak, relative to the signal's peak", 0.001, 4.0),
    "width_ms_min": Param(float, 0.05, "shortest click (ms)", 0.01, 10.0),
    "width_ms_max": Param(float, 1.0, "longest click (ms)", 0.01, 10.0),
    "shape": Param(str, "mixed", "click waveform", choices=SHAPES + ("mixed",)),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Add clicks at Poisson times with log-uniform amplitudes and uniform widths, same in all channels.

    Labels ``click_times_s`` (onsets). Severity: sqrt(rate/10 Hz) x (mean amplitude / 0.5),
    capped at 1; 0 when no click fell in the clip.
    """
    c, n = audio.shape
    lo, hi = sorted((params["amp_min"], params["amp_max"]))
    wlo, whi = sorted((params["width_ms_min"], params["width_ms_max"]))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    peak = peak if peak > 1e-6 else 0.1
    pos = impulse_events(n, sample_rate, params["rate_hz"], rng)
    out = audio.astype(np.float64)
    amps = []
    for p in pos:
        width = max(1, int(round(rng.uniform(wlo, whi) * sample_rate / 1000)))
        shape = params["shape"] if params["shape"] != "mixed" else SHAPES[int(rng.integers(len(SHAPES)))]
        amp = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * peak * rng.choice((-1.0, 1.0))
        w = click_shape(shape, width, rng, sample_rate)[: n - p]
        out[:, p:p + w.size] += amp * w
        amps.append(abs(amp) / peak)
    mean_amp = float(np.mean(amps)) if amps else 0.0
    severity = 0.0 if not amps else float(min(1.0, np.sqrt(params["rate_hz"] / 10.0) * mean_amp / 0.5))
    return out.astype(np.float32), {"severity": severity, "click_count": int(pos.size),
                                    "click_times_s": [round(float(p) / sample_rate, 6) for p in pos]}
