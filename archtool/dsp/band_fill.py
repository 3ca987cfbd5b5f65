"""Top up a filled gap's upper band with noise shaped like its surroundings.

The inpainting U-Nets work at 16 or 22.05 kHz. On a 44.1 or 48 kHz recording their fill
has nothing above 8 or 11 kHz, so a long gap shows (and, in hiss or cymbals, sounds) as a
hole in the top band. Above the model's band, music and speech are mostly noise-like, and a
listener hears their level and colour, not their waveform. So :func:`top_up_band` adds
noise, per STFT bin above ``cutoff_hz``, up to the power of the surrounding frames (log-power
interpolated from the frames before the gap to those after it), keeping whatever the fill
already has there (e.g. the Janssen fill's top band near the gap edges).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import signal

__all__ = ["top_up_band"]

WINDOW_MS = 23.0
CONTEXT_FRAMES = 8
# Frames of independent random phase overlap-add (Hann, hop a quarter) to about 0.23 of the
# power their magnitudes ask for (measured: 0.22-0.24 on white and coloured noise, 44.1-96
# kHz, 100-400 ms gaps); the noise is scaled to make up for it.
OLA_POWER = 0.23


def top_up_band(y: np.ndarray, start: int, stop: int, sample_rate: int, cutoff_hz: float,
                seed: int = 0) -> np.ndarray:
    """The gap ``y[start:stop]`` (``y`` 1-D, the gap already filled) with its band above
    ``cutoff_hz`` topped up to the surroundings' level; returns ``(stop - start,)`` float64.

    The level of each bin is the mean power of the :data:`CONTEXT_FRAMES` whole STFT frames
    before the gap and of those after it, interpolated in log power across the gap; noise
    (seeded by ``seed``) adds only the power the fill lacks. Returns the fill unchanged when
    there is not enough context on both sides or the cutoff is at or above Nyquist.
    """
    y = np.asarray(y, dtype=np.float64)
    gap = stop - start
    n = max(16, int(round(WINDOW_MS * sample_rate / 1000.0)))
    n += n % 2
    hop = n // 4
    reach = CONTEXT_FRAMES * hop + n
    if cutoff_hz >= sample_rate / 2 or gap <= 0 or start < reach or stop + reach > y.shape[0]:
        return y[start:stop].copy()
    lo, hi = start - reach, stop + reach
    seg = y[lo:hi]
    kw = dict(fs=sample_rate, window="hann", nperseg=n, noverlap=n - hop, boundary=None, padded=False)
    freqs, times, spec = signal.stft(seg, **kw)
    frame_start = np.arange(spec.shape[1]) * hop  # first sample of each frame, in seg
    left = frame_start + n <= reach  # frames wholly before the gap
    right = frame_start >= reach + gap  # frames wholly after it
    inside = ~left & ~right
    if left.sum() < 2 or right.sum() < 2 or not inside.any():
        return y[start:stop].copy()
    power = np.abs(spec) ** 2
    p_left = np.log(power[:, left][:, -CONTEXT_FRAMES:].mean(axis=1) + 1e-20)
    p_right = np.log(power[:, right][:, :CONTEXT_FRAMES].mean(axis=1) + 1e-20)
    centre = frame_start[inside] + n / 2
    w = np.clip((centre - reach) / max(gap, 1), 0.0, 1.0)  # 0 at the left edge, 1 at the right
    target = np.exp((1.0 - w)[None, :] * p_left[:, None] + w[None, :] * p_right[:, None])
    band = freqs >= cutoff_hz
    missing = np.sqrt(np.maximum(target[band] - power[band][:, inside], 0.0))
    rng = np.random.default_rng(seed)
    phase = np.exp(2j * np.pi * rng.random(missing.shape))
    add = np.zeros_like(spec)
    add[np.ix_(band, np.flatnonzero(inside))] = missing * phase / np.sqrt(OLA_POWER)
    with warnings.catch_warnings():  # no boundary padding: the frames cover the gap, not seg's ends
        warnings.simplefilter("ignore", UserWarning)
        noise = signal.istft(add, **{k: v for k, v in kw.items() if k != "padded"})[1]
    noise = np.pad(noise, (0, max(0, seg.shape[0] - noise.shape[0])))[:seg.shape[0]]
    # only the gap changes; 2 ms fades keep its edges from clicking
    part = noise[reach:reach + gap].copy()
    k = min(gap // 2, max(1, int(0.002 * sample_rate)))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
    part[:k] *= ramp
    part[gap - k:] *= ramp[::-1]
    return y[start:stop] + part
