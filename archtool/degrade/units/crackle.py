"""Crackle: dense small impulses (shellac grain, micro-scratches) at a target SNR."""
from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, register_unit, severity_from_snr
from archtool.degrade.units.clicks import impulse_events
from archtool.degrade.units.noise import GAIN


def crackle_signal(n: int, sample_rate: int, rate_hz: float, width_ms: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Mono crackle of length ``n``: Poisson impulses with heavy-tailed amplitudes, each a short
    decaying bipolar burst of about ``width_ms``. Unit RMS (zeros if no event)."""
    pos = impulse_events(n, sample_rate, rate_hz, rng)
    x = np.zeros(n)
    if pos.size == 0:
        return x
    amps = rng.pareto(2.5, pos.size) + 0.2
    np.add.at(x, pos, amps * rng.choice((-1.0, 1.0), pos.size))
    width = max(2, int(round(width_ms * sample_rate / 1000)))
    t = np.arange(width)
    kernel = np.exp(-4.0 * t / width) * np.cos(np.pi * t / max(1.0, width / 2.5))
    x = fftconvolve(x, kernel)[:n]
    return x / max(np.sqrt(np.mean(x ** 2)), 1e-12)


@register_unit("crackle", "crackle", {
    "rate_hz": Param(float, 400.0, "mean impulses per second", 10.0, 5000.0),
    "snr_db": Param(float, 25.0, "signal-to-crackle ratio in dB", -5.0, 60.0),
    "gain": GAIN,
    "width_ms": Param(float, 0.15, "impulse duration (ms)", 0.02, 2.0),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Add crackle (same in every channel, as on a mono disc).

    Severity: 1 at 5 dB SNR or worse, 0 at 45 dB or better.
    """
    c, n = audio.shape
    x = crackle_signal(n, sample_rate, params["rate_hz"], params["width_ms"], rng)
    if not np.any(x):
        return audio.copy(), {"severity": 0.0, "snr_db": float("inf")}
    out, snr = add_noise(audio, np.repeat(x[None], c, axis=0), params["snr_db"], params["gain"])
    return out, {"severity": severity_from_snr(snr, 5.0, 45.0), "snr_db": snr}
