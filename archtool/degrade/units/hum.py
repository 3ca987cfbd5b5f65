"""Mains hum and buzz: 50 or 60 Hz and harmonics, with slow drift of frequency and level."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, register_unit, severity_from_snr
from archtool.degrade.units.noise import GAIN


def slow_random(n: int, sample_rate: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve in [-1, 1] of length ``n`` varying at about ``rate_hz``."""
    knots = max(4, int(np.ceil(n / sample_rate * rate_hz)) + 3)
    values = rng.uniform(-1, 1, knots)
    x = np.linspace(0, knots - 3, n)
    return np.interp(x, np.arange(knots), values)


@register_unit("hum", "hum", {
    "freq_hz": Param(float, 50.0, "mains fundamental", 45.0, 65.0),
    "snr_db": Param(float, 25.0, "signal-to-hum ratio in dB", -10.0, 70.0),
    "gain": GAIN,
    "harmonics": Param(int, 5, "number of harmonics including the fundamental", 1, 40),
    "decay_db": Param(float, 6.0, "level drop per harmonic (dB)", 0.0, 24.0),
    "buzz": Param(bool, False, "buzz: odd harmonics emphasised, even ones 12 dB down"),
    "drift_hz": Param(float, 0.1, "peak slow deviation of the fundamental (Hz)", 0.0, 1.0),
    "level_drift_db": Param(float, 1.0, "peak slow level variation (dB)", 0.0, 6.0),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Harmonic hum with slowly drifting pitch and level, identical in every channel.

    Severity: 1 at 0 dB SNR or worse, 0 at 50 dB or better (hum is audible at low levels).
    """
    c, n = audio.shape
    f0 = params["freq_hz"] + params["drift_hz"] * slow_random(n, sample_rate, 0.2, rng)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    hum = np.zeros(n)
    nyq = sample_rate / 2
    for k in range(1, params["harmonics"] + 1):
        if k * params["freq_hz"] >= nyq * 0.95:
            break
        level_db = -params["decay_db"] * (k - 1)
        if params["buzz"] and k % 2 == 0:
            level_db -= 12.0
        hum += 10 ** (level_db / 20) * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    env_db = params["level_drift_db"] * slow_random(n, sample_rate, 0.1, rng)
    hum *= 10 ** (env_db / 20)
    out, snr = add_noise(audio, np.repeat(hum[None], c, axis=0), params["snr_db"], params["gain"])
    return out, {"severity": severity_from_snr(snr, 0.0, 50.0), "snr_db": snr,
                 "fundamental_hz": params["freq_hz"]}
