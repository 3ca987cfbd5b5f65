"""Additive white or coloured Gaussian noise at a target SNR (or a gain relative to the signal)."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, coloured_noise, register_unit, \
    severity_from_snr

#: Power-spectrum exponent of each colour: S(f) ~ f**exponent.
COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0, "violet": 2.0}

SNR = Param(float, 20.0, "signal-to-noise ratio of this addition in dB", -10.0, 80.0)
GAIN = Param(float, None, "if set, noise RMS = gain x signal RMS (overrides snr_db; seed 000's U[0,1] weight)",
             0.0, 10.0)


@register_unit("noise", "noise", {
    "snr_db": SNR,
    "gain": GAIN,
    "colour": Param(str, "white", "spectral colour", choices=tuple(COLOURS)),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Additive white/coloured Gaussian noise, independent per channel.

    Severity: 1 at 0 dB SNR or worse, 0 at 40 dB or better, linear in between.
    """
    n = coloured_noise(audio.shape, COLOURS[params["colour"]], rng)
    out, snr = add_noise(audio, n, params["snr_db"], params["gain"])
    return out, {"severity": severity_from_snr(snr), "snr_db": snr}
