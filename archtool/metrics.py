"""Evaluation metrics on numpy arrays: SDR, SI-SDR, SNR, log-spectral distance, spectral PSNR.

All take ``reference`` and ``estimate`` of the same shape (``(samples,)`` or
``(channels, samples)``); multichannel inputs are scored over all channels
together. PESQ and STOI are computed when the ``pesq`` / ``pystoi`` packages are
installed (speech at 8 or 16 kHz), and reported as ``None`` otherwise.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import signal

EPS = 1e-12


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    n = min(ref.shape[-1], est.shape[-1])
    if ref.shape[:-1] != est.shape[:-1]:
        raise ValueError(f"reference {ref.shape} and estimate {est.shape} have different channel counts")
    return ref[..., :n], est[..., :n]


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """``10 log10(|ref|^2 / |ref - est|^2)``; identical to SDR without a projection (BSS-eval v4 style)."""
    ref, est = _pair(reference, estimate)
    return float(10 * np.log10((np.sum(ref**2) + EPS) / (np.sum((ref - est) ** 2) + EPS)))


sdr_db = snr_db


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR (Le Roux et al., 2019), zero-mean, in dB."""
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    est = est - est.mean(axis=-1, keepdims=True)
    alpha = np.sum(ref * est) / (np.sum(ref**2) + EPS)
    target = alpha * ref
    return float(10 * np.log10((np.sum(target**2) + EPS) / (np.sum((est - target) ** 2) + EPS)))


def _power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    x = np.atleast_2d(x)
    _, _, z = signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, boundary=None, padded=False)
    return np.abs(z) ** 2  # (channels, freqs, frames)


def lsd_db(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
    """Log-spectral distance: per frame, RMS over frequency of the log10 power ratio; mean over frames.

    Follows the super-resolution literature (Kuleshov et al.; seed 002), so values are
    in "log10 power" units (e.g. 1.4-3 for bandwidth extension).
    """
    ref, est = _pair(reference, estimate)
    pr = _power_spectrogram(ref, n_fft, hop)
    pe = _power_spectrogram(est, n_fft, hop)
    d = np.log10(pr + 1e-10) - np.log10(pe + 1e-10)
    return float(np.mean(np.sqrt(np.mean(d**2, axis=-2))))


def spectral_psnr_db(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 254, hop: int = 64) -> float:
    """PSNR of magnitude spectrograms (dB), peak taken from the reference (seed 001's measure)."""
    ref, est = _pair(reference, estimate)
    mr = np.sqrt(_power_spectrogram(ref, n_fft, hop))
    me = np.sqrt(_power_spectrogram(est, n_fft, hop))
    mse = np.mean((mr - me) ** 2)
    peak = mr.max()
    if mse <= 0:
        return math.inf
    return float(10 * np.log10((peak**2 + EPS) / mse))


def pesq_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float | None:
    """Wide-band PESQ (16 kHz) or narrow-band (8 kHz) when ``pesq`` is installed; else None."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    ref, est = _pair(reference, estimate)
    ref, est = np.atleast_2d(ref)[0], np.atleast_2d(est)[0]
    if sample_rate not in (8000, 16000):
        from scipy.signal import resample_poly

        ref = resample_poly(ref, 16000, sample_rate)
        est = resample_poly(est, 16000, sample_rate)
        sample_rate = 16000
    try:
        return float(pesq(sample_rate, ref, est, "wb" if sample_rate == 16000 else "nb"))
    except Exception:  # pesq raises on silent or too-short input
        return None


def stoi_score(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float | None:
    """STOI when ``pystoi`` is installed; else None."""
    try:
        from pystoi import stoi
    except ImportError:
        return None
    ref, est = _pair(reference, estimate)
    return float(stoi(np.atleast_2d(ref)[0], np.atleast_2d(est)[0], sample_rate, extended=False))


def all_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                speech: bool = False) -> dict[str, float | None]:
    """Every metric for one pair, as a dict (PESQ/STOI only when ``speech``)."""
    out: dict[str, float | None] = {
        "sdr_db": sdr_db(reference, estimate),
        "si_sdr_db": si_sdr_db(reference, estimate),
        "lsd": lsd_db(reference, estimate),
        "spectral_psnr_db": spectral_psnr_db(reference, estimate),
    }
    if speech:
        out["pesq"] = pesq_score(reference, estimate, sample_rate)
        out["stoi"] = stoi_score(reference, estimate, sample_rate)
    return out
