"""Bandwidth-extension metrics on numpy signals ``(N,)`` at one rate.

* :func:`lsd`: the field's log-spectral distance: per 2048-point Hann frame (hop 512),
  the RMS over frequency of ``log10 |S|^2 - log10 |Y|^2``, averaged over frames
  (power floored at 1e-10 of full scale squared). Unit: log10 power ("bels").
* :func:`lsd_kuleshov`: the variant in kuleshov/audio-super-res, which seed 002's
  code inherits: natural log of power (+1e-8), RMS taken over *time* per bin, then
  averaged over bins. Reported so our figures can be set beside the seed's.
* :func:`snr_db`: ``10 log10(|s|^2 / |s - y|^2)``.
"""
from __future__ import annotations

import numpy as np


def _power(x: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """``|STFT|^2`` ``(frames, n_fft//2+1)``; centred frames, reflect padding."""
    x = np.asarray(x, np.float64)
    x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect" if x.size > n_fft // 2 else "constant")
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=-1)) ** 2


def _aligned(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(ref), len(est))
    return np.asarray(ref[:n], np.float64), np.asarray(est[:n], np.float64)


def lsd(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Log-spectral distance in log10 units (lower is better)."""
    r, e = _aligned(reference, estimate)
    d = np.log10(_power(r) + 1e-10) - np.log10(_power(e) + 1e-10)
    return float(np.mean(np.sqrt(np.mean(d ** 2, axis=1))))


def lsd_kuleshov(reference: np.ndarray, estimate: np.ndarray) -> float:
    """kuleshov/audio-super-res LSD (natural log, RMS over time, mean over bins), capped at 10."""
    r, e = _aligned(reference, estimate)
    d = np.log(_power(r) + 1e-8) - np.log(_power(e) + 1e-8)
    return float(min(np.mean(np.sqrt(np.mean(d ** 2 + 1e-8, axis=0))), 10.0))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB."""
    r, e = _aligned(reference, estimate)
    return float(10 * np.log10((np.sum(r ** 2) + 1e-20) / (np.sum((r - e) ** 2) + 1e-20)))
