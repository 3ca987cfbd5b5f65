"""Phone-microphone simulation (seed 004): band-pass, small-capsule resonance, compression, noise.

Seed 004 restores recordings made on phone microphones; their defects are a narrow band
(roughly 100-600 Hz up to 3-8 kHz), a resonant capsule, automatic gain control/compression
and self-noise. The compressor is a feed-forward RMS compressor (10 ms attack, 150 ms
release); the output keeps the input's RMS.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

from archtool.degrade.base import STAGE_BAND, Param, add_noise, coloured_noise, power, register_unit, \
    severity_from_snr
from archtool.degrade.units.bandlimit import bandlimit_severity, steep_lowpass, zero_phase


def peaking_eq(freq: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ peaking-EQ biquad coefficients (b, a)."""
    a_lin = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return b / a[0], a / a[0]


def compress(x: np.ndarray, sample_rate: int, threshold_db: float, ratio: float) -> np.ndarray:
    """Feed-forward compressor on the channel-mean RMS envelope; threshold relative to the clip's RMS."""
    p = np.mean(x ** 2, axis=0)
    ref = max(power(x), 1e-12)
    att = 1 - np.exp(-1 / (0.010 * sample_rate))
    rel = 1 - np.exp(-1 / (0.150 * sample_rate))
    # one-pole smoothing with the attack constant, then a slower release path; take the max
    fast = lfilter([att], [1, att - 1], p)
    slow = lfilter([rel], [1, rel - 1], p)
    env_db = 10 * np.log10(np.maximum(np.maximum(fast, slow), 1e-12) / ref)
    over = np.maximum(env_db - threshold_db, 0.0)
    gain = 10 ** (-over * (1 - 1 / ratio) / 20)
    return x * gain


@register_unit("phone", "bandlimit", {
    "low_hz": Param(float, 300.0, "high-pass corner of the capsule (Hz)", 50.0, 1000.0),
    "high_hz": Param(float, 3400.0, "upper band edge: stop band starts here (Hz)", 2000.0, 12000.0),
    "resonance_hz": Param(float, 2500.0, "capsule resonance (Hz)", 500.0, 6000.0),
    "resonance_db": Param(float, 4.0, "resonance gain (dB)", 0.0, 12.0),
    "ratio": Param(float, 4.0, "compression ratio", 1.0, 20.0),
    "threshold_db": Param(float, -6.0, "compression threshold relative to the clip RMS (dB)", -30.0, 10.0),
    "snr_db": Param(float, 30.0, "signal-to-self-noise ratio (dB)", 0.0, 70.0),
}, stage=STAGE_BAND, extra_kinds=("noise",))
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Phone-microphone chain; labels ``cutoff_hz`` (= high_hz), ``low_hz`` and the noise SNR.

    Kinds: bandlimit (severity of the cutoff) and noise (1 at 0 dB, 0 at 40 dB SNR).
    """
    x = audio.astype(np.float64)
    rms_in = np.sqrt(power(x))
    nyq = sample_rate / 2
    high = min(params["high_hz"], 0.95 * nyq)
    low = min(params["low_hz"], 0.5 * high)
    x = zero_phase(butter(2, low, "high", fs=sample_rate, output="sos"), x)
    if params["resonance_db"] > 0 and params["resonance_hz"] < 0.9 * nyq:
        b, a = peaking_eq(params["resonance_hz"], params["resonance_db"], 2.0, sample_rate)
        x = lfilter(b, a, x, axis=-1)
    if params["ratio"] > 1:
        x = compress(x, sample_rate, params["threshold_db"], params["ratio"])
    rms = np.sqrt(power(x))
    if rms > 0:
        x *= rms_in / rms
    noise = coloured_noise(x.shape, -0.5, rng)
    limited = high < 0.95 * nyq
    if limited:
        x = steep_lowpass(x, sample_rate, high)
        noise = steep_lowpass(noise, sample_rate, high)
    x, snr = add_noise(x, noise, params["snr_db"], None)
    cutoff = high if limited else None
    band_sev = bandlimit_severity(high, sample_rate) if limited else 0.0
    return np.asarray(x, dtype=np.float32), {
        "severity": band_sev, "cutoff_hz": cutoff, "low_hz": low, "snr_db": snr,
        "kinds": {"bandlimit": band_sev, "noise": severity_from_snr(snr)}}
