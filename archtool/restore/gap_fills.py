"""How a gap's fill is composed from the Janssen fill and the network's: raised-cosine
ramps from the Janssen fill at the edges (:func:`ramp_blend`), per-band gains
(:func:`band_gain`), the per-bin blend of the two (:func:`spectral_blend`), the whole
recipe (:func:`unet_base_fill`, then :func:`finish_fill`), and the AR fill for steady
surroundings (:func:`steady_fill`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from archtool.dsp.janssen import ar_fill, ar_order_for, bidirectional_extrapolate
from archtool.restore.gap_plan import Recipe

if TYPE_CHECKING:
    from archtool.restore.unet_filler import UNetFiller

BLEND_WINDOW_MS = 32.0  # the STFT of spectral_blend (Hann, hop a quarter of it)
BLEND_PAD_MS = 40.0  # zeros around the gap before that STFT


def steady_fill(x: np.ndarray, start: int, stop: int, sample_rate: int) -> np.ndarray:
    """The gap ``(stop - start,)`` of a signal its surroundings predict (a steady tone or chord):
    the Janssen fill where it matches the bidirectional AR prediction to 20 dB, else that
    prediction. The prediction is steady but only ~20-24 dB exact (its
    cross-fade); Janssen is exact to 40 dB and more at 8-16 kHz, but at high rates its long
    filters can lose a low tone mid-gap (220 Hz at 44.1 kHz, 100 ms: 2.5 dB)."""
    janssen = ar_fill(x, start, stop, sample_rate)
    predicted = bidirectional_extrapolate(x, start, stop, sample_rate)
    if not np.all(np.isfinite(predicted)):
        return janssen
    # Janssen within 20 dB of the prediction: |janssen - predicted|^2 <= 1 % of |predicted|^2
    if np.sum((janssen - predicted) ** 2) <= 0.01 * np.sum(predicted ** 2):
        return janssen
    return predicted


def ramp_blend(ar: np.ndarray, fill: np.ndarray, k: int) -> np.ndarray:
    """``fill`` cross-faded (raised cosine) from ``ar`` over ``k`` samples at each end (k <= half)."""
    n = fill.shape[0]
    k = min(k, n // 2)
    if k <= 0:
        return fill
    v = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
    v[:k] = ramp
    v[n - k:] = np.minimum(v[n - k:], ramp[::-1])
    return v * fill + (1.0 - v) * ar


def band_gain(ar: np.ndarray, fill: np.ndarray, sample_rate: int, split_hz: float,
              gain_low: float, gain_high: float) -> np.ndarray:
    """``ar + G(fill - ar)``: the departure of ``fill`` from the Janssen fill ``ar`` (both
    ``(m,)``, the gap), filtered with gain ``gain_low`` below ``split_hz`` and ``gain_high``
    above (raised-cosine transition over the octave centred on ``split_hz``, zero phase).

    The difference is zero-padded by ``max(m, 20 ms)`` on each side before the FFT filter,
    so the filter does not wrap around; only gap samples are returned, so samples outside
    the gap never change. Returns ``(m,)`` float64.
    """
    if gain_low == gain_high == 1.0:
        return np.asarray(fill, dtype=np.float64)
    d = np.asarray(fill, dtype=np.float64) - ar
    m = d.shape[0]
    if gain_low == gain_high:
        return ar + gain_low * d
    pad = max(m, int(0.02 * sample_rate))
    size = m + 2 * pad
    freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
    lo, hi = np.log2(split_hz) - 0.5, np.log2(split_hz) + 0.5
    t = np.clip((np.log2(np.maximum(freqs, 1e-9)) - lo) / (hi - lo), 0.0, 1.0)
    g = gain_low + (gain_high - gain_low) * (0.5 - 0.5 * np.cos(np.pi * t))
    filtered = np.fft.irfft(np.fft.rfft(np.pad(d, (pad, pad))) * g, size)[pad:pad + m]
    return ar + filtered


def spectral_blend(ar: np.ndarray, fill: np.ndarray, sample_rate: int, lam: float = 1.0,
                   loud: float = 3.0, keep_ar: bool = False, coherence_power: float = 1.0) -> np.ndarray:
    """The network's gap fill ``fill`` and the Janssen fill ``ar`` (both ``(m,)``) combined per
    STFT bin (Hann window of :data:`BLEND_WINDOW_MS`, hop a quarter of it, the gap zero-padded
    by :data:`BLEND_PAD_MS` on each side). Returns ``(m,)`` float64, the gap only.

    ``c = min(|A| / |U|, 1) ** coherence_power`` per bin (``A``, ``U``: the two fills' STFTs)
    is a reference-free estimate of how much of the Janssen fill's phase is right: LSAR keeps
    its level where the signal is predictable and decays where it is not. A bin is *loud*
    when ``|U|^2 >= loud`` times the mean of ``|U|^2`` over the gap's STFT. Loud bins get the
    Janssen fill's phase and the magnitude ``|U| (c + lam) / (1 + lam)``: ``lam = 0`` is the
    magnitude that minimises the expected squared error when a fraction ``c`` of the phase is
    right (SNR), larger ``lam`` moves it towards the network's magnitude (LSD, spectrogram
    PSNR). Quiet bins cost little energy and count in LSD like any other: they keep the
    network's fill. ``keep_ar``: never below the Janssen fill's magnitude, loud bins or quiet
    (quiet ones then get ``max(|A|, |U|)`` on the Janssen phase, a top-up).
    """
    from scipy import signal

    ar = np.asarray(ar, dtype=np.float64)
    m = ar.shape[0]
    n = max(16, int(BLEND_WINDOW_MS * sample_rate / 1000))
    hop = n // 4
    pad = int(BLEND_PAD_MS * sample_rate / 1000)
    kw = dict(nperseg=n, noverlap=n - hop, boundary="zeros", padded=True)
    a = signal.stft(np.pad(ar, (pad, pad)), **kw)[2]
    u = signal.stft(np.pad(np.asarray(fill, dtype=np.float64), (pad, pad)), **kw)[2]
    mag_a, mag_u = np.abs(a), np.abs(u)
    phase = np.exp(1j * np.angle(a))
    c = np.minimum(mag_a / np.maximum(mag_u, 1e-20), 1.0) ** float(coherence_power)
    mag = mag_u * (c + lam) / (1.0 + lam)
    power = mag_u ** 2
    is_loud = power >= loud * power.mean()
    if keep_ar:
        out = np.where(is_loud, np.maximum(mag, mag_a), np.maximum(mag_u, mag_a)) * phase
    else:
        out = np.where(is_loud, mag * phase, u)
    y = signal.istft(out, nperseg=n, noverlap=n - hop, boundary=True)[1]
    return y[pad:pad + m]


def finish_fill(ar: np.ndarray, base: np.ndarray, sample_rate: int, recipe: Recipe,
                ramp_ms: float | None = None) -> np.ndarray:
    """A U-Net-based recipe's gap ``(m,)`` from the Janssen fill ``ar`` and the network's
    fill ``base``: for ``blend``, first :func:`spectral_blend`; then cross-faded from ``ar``
    over ``ramp_ms`` (default the recipe's ``ar_ramp_ms``) at each edge, then
    :func:`band_gain` with the recipe's gains."""
    ramp = recipe.ar_ramp_ms if ramp_ms is None else float(ramp_ms)
    if recipe.kind == "blend":
        base = spectral_blend(ar, base, sample_rate, recipe.lam, recipe.loud, recipe.keep_ar,
                              recipe.coherence_power)
    fill = ramp_blend(ar, base, int(round(ramp * sample_rate / 1000.0)))
    return band_gain(ar, fill, sample_rate, recipe.split_hz, recipe.gain_low, recipe.gain_high)


def unet_base_fill(filler: "UNetFiller", x: np.ndarray, start: int, stop: int, sample_rate: int,
                   recipe: Recipe, ar: np.ndarray | None, iterations: int | None = None) -> np.ndarray:
    """The network's fill of ``x[start:stop]`` for a ``unet``, ``blend`` or ``ar_topup``
    recipe, started from the Janssen fill ``ar`` (``init="janssen"``) or from the bidirectional AR prediction
    (``init="extrapolate"``; ``ar`` unused), before :func:`finish_fill`. ``iterations``
    overrides the ``unet`` / ``blend`` recipe's Griffin-Lim iterations. Returns ``(stop - start,)`` float64."""
    init = ar if recipe.init == "janssen" else None
    if recipe.kind in ("unet", "blend"):
        its = recipe.iterations if iterations is None else int(iterations)
        return filler.fill(x, start, stop, sample_rate, its, init=init, anchor_ms=recipe.anchor_ms)
    return filler.fill(x, start, stop, sample_rate, recipe.iterations, init=init,
                       mag_range=(recipe.floor, recipe.ceiling), momentum=0.0, anchor_ms=recipe.anchor_ms)


def ar_order_bounded(gap_samples: int, sample_rate: int) -> int:
    """Janssen order for the U-Net-based recipes: :func:`ar_order_for`, bounded so the
    banded solve (``O(gap * order^2)``) costs no more than a 400 ms gap at 22.05 kHz
    (order 441), and never below 64."""
    budget = 8820 * 441 ** 2
    cap = max(64, int(np.sqrt(budget / max(gap_samples, 1))))
    return min(ar_order_for(gap_samples, sample_rate), cap)
