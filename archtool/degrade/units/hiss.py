"""Tape and cylinder hiss: broadband noise with a spectral tilt and optional rotation modulation."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, coloured_noise, register_unit, \
    severity_from_snr
from archtool.degrade.units.noise import GAIN, SNR


@register_unit("hiss", "noise", {
    "snr_db": SNR,
    "gain": GAIN,
    "tilt_db_per_octave": Param(float, 1.5, "spectral slope: >0 brighter (tape), <0 darker (cylinder)",
                                -6.0, 6.0),
    "mod_rate_hz": Param(float, 0.0, "amplitude modulation rate (cylinder at 160 rpm: 2.67 Hz); 0 = none",
                         0.0, 10.0),
    "mod_depth": Param(float, 0.0, "modulation depth (0 none, 1 full)", 0.0, 1.0),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Tape/cylinder hiss: tilted Gaussian noise, optionally modulated at the carrier's rotation rate.

    Severity: 1 at 0 dB SNR or worse, 0 at 40 dB or better.
    """
    exponent = params["tilt_db_per_octave"] / (10 * np.log10(2.0))
    n = coloured_noise(audio.shape, exponent, rng)
    if params["mod_rate_hz"] > 0 and params["mod_depth"] > 0:
        t = np.arange(audio.shape[1]) / sample_rate
        phase = rng.uniform(0, 2 * np.pi)
        n = n * (1 + params["mod_depth"] * np.sin(2 * np.pi * params["mod_rate_hz"] * t + phase))
    out, snr = add_noise(audio, n, params["snr_db"], params["gain"])
    return out, {"severity": severity_from_snr(snr), "snr_db": snr}
