"""Turntable rumble: low-frequency noise (and an optional motor tone) at a target SNR."""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, register_unit, severity_from_snr
from archtool.degrade.units.noise import GAIN


@register_unit("rumble", "rumble", {
    "snr_db": Param(float, 20.0, "signal-to-rumble ratio in dB", -10.0, 60.0),
    "gain": GAIN,
    "cutoff_hz": Param(float, 30.0, "upper edge of the rumble band (4th-order low-pass)", 5.0, 100.0),
    "tone_hz": Param(float, 0.0, "frequency of a motor tone added to the noise (0 = none)", 0.0, 60.0),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Low-pass filtered noise below ``cutoff_hz`` plus an optional motor tone.

    Severity: 1 at 0 dB SNR or worse, 0 at 40 dB or better.
    """
    c, n = audio.shape
    sos = butter(4, params["cutoff_hz"], "low", fs=sample_rate, output="sos")
    warm = min(n, int(sample_rate * 2.0 / params["cutoff_hz"]) * 4)
    noise = sosfilt(sos, rng.standard_normal((c, n + warm)), axis=-1)[:, warm:]
    noise /= max(np.sqrt(np.mean(noise ** 2)), 1e-12)
    if params["tone_hz"] > 0:
        t = np.arange(n) / sample_rate
        noise = noise + np.sqrt(2) * 0.7 * np.sin(2 * np.pi * params["tone_hz"] * t + rng.uniform(0, 2 * np.pi))
    out, snr = add_noise(audio, noise, params["snr_db"], params["gain"])
    return out, {"severity": severity_from_snr(snr), "snr_db": snr}
