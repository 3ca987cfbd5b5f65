"""Band limitation: a steep low-pass at a cutoff, and seed 002's four downsampling schemes.

``lowpass``: zero-phase Chebyshev type II (stop band >= 50 dB from ``cutoff_hz`` up, doubled
by forward-backward filtering), so energy above the labelled cutoff is >= 40 dB down.
``downsample`` (factor 2 or 4), seed 002: (1) "cheby": Chebyshev type I order-8 low-pass,
then subsampling by discarding samples; (2) "decimate": scipy.signal.decimate;
(3) "resample": Fourier resampling; (4) "mix": one of the three at random. The
low-rate signal is brought back to the original rate (band-limited "sinc" interpolation by
FFT zero-padding, or seed 002's cubic "spline"), so the shape is unchanged.
"""
from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import cheby1, cheby2, decimate, lfilter, resample, sosfiltfilt

from archtool.degrade.base import STAGE_BAND, Param, register_unit

SCHEMES = ("cheby", "decimate", "resample")


def bandlimit_severity(cutoff_hz: float, sample_rate: int) -> float:
    """log2(min(Nyquist, 20 kHz) / cutoff) / 4, in 0..1 (halving the band = 0.25)."""
    top = min(sample_rate / 2, 20000.0)
    return float(np.clip(np.log2(top / max(cutoff_hz, 1.0)) / 4.0, 0.0, 1.0))


def zero_phase(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sosfiltfilt along the last axis, with the edge padding shortened for very short inputs."""
    pad = min(3 * (2 * sos.shape[0] + 1), max(0, x.shape[-1] - 1))
    return sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1, padlen=pad)


def steep_lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float, order: int = 10) -> np.ndarray:
    """Zero-phase Chebyshev II low-pass whose stop band (>= 100 dB after filtfilt) starts at cutoff."""
    sos = cheby2(order, 50, cutoff_hz, "low", fs=sample_rate, output="sos")
    return zero_phase(sos, audio)


@register_unit("lowpass", "bandlimit", {
    "cutoff_hz": Param(float, 4000.0, "start of the stop band (Hz); >= 0.95 x Nyquist leaves audio unchanged",
                       200.0, 48000.0),
    "order": Param(int, 10, "Chebyshev II order (higher = steeper)", 4, 16),
}, stage=STAGE_BAND)
def lowpass(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Steep zero-phase low-pass. Labels ``cutoff_hz``. Severity: see bandlimit_severity."""
    cutoff = params["cutoff_hz"]
    if cutoff >= 0.95 * sample_rate / 2:
        return audio.copy(), {"severity": 0.0, "cutoff_hz": None}
    out = steep_lowpass(audio, sample_rate, cutoff, params["order"])
    return out.astype(np.float32), {"severity": bandlimit_severity(cutoff, sample_rate), "cutoff_hz": cutoff}


def downsample_scheme(audio: np.ndarray, factor: int, scheme: str) -> np.ndarray:
    """Seed 002's schemes: the signal at rate/factor (float64, (C, ceil(n/factor)) or similar)."""
    x = np.asarray(audio, dtype=np.float64)
    if scheme == "cheby":
        b, a = cheby1(8, 0.05, 0.8 / factor)
        return lfilter(b, a, x, axis=-1)[:, ::factor]
    if scheme == "decimate":
        return decimate(x, factor, axis=-1, zero_phase=True)
    if scheme == "resample":
        return resample(x, int(np.ceil(x.shape[1] / factor)), axis=-1)
    raise ValueError(f"unknown downsampling scheme {scheme!r}")


@register_unit("downsample", "bandlimit", {
    "factor": Param(int, 2, "downsampling factor", choices=(2, 4)),
    "scheme": Param(str, "mix", "seed 002 scheme", choices=SCHEMES + ("mix",)),
    "upsample": Param(str, "sinc", "back to the original rate: sinc (band-limited) or spline (seed 002)",
                      choices=("sinc", "spline")),
}, stage=STAGE_BAND)
def downsample(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Downsample by ``factor`` with a seed 002 scheme and upsample back to the input rate.

    Labels ``cutoff_hz`` = the low rate's Nyquist and the scheme used.
    """
    c, n = audio.shape
    factor = params["factor"]
    scheme = params["scheme"] if params["scheme"] != "mix" else SCHEMES[int(rng.integers(len(SCHEMES)))]
    low = downsample_scheme(audio, factor, scheme)
    if params["upsample"] == "sinc":
        up = resample(low, low.shape[1] * factor, axis=-1)  # FFT interpolation: nothing above the low Nyquist
    else:
        t_low = np.arange(low.shape[1]) * factor
        up = CubicSpline(t_low, low, axis=-1, extrapolate=True)(np.arange(n))
    up = up[:, :n]
    if up.shape[1] < n:
        up = np.pad(up, ((0, 0), (0, n - up.shape[1])))
    cutoff = sample_rate / 2 / factor
    return up.astype(np.float32), {"severity": bandlimit_severity(cutoff, sample_rate), "cutoff_hz": cutoff,
                                   "scheme": scheme}
