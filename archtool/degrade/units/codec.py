"""Lossy codec round trip (MP3 or Opus at a low bitrate) through ffmpeg pipes.

The decoded signal is realigned to the input (the codec's delay is found by
cross-correlation) and cut or padded to the input's length. The encoder's low-pass is set
explicitly (``encoder_cutoff_hz``); since codecs roll off gradually, the label's
``cutoff_hz`` is measured on the output: the lowest frequency above which every band
is at least 20 dB below the input (Welch spectra).
"""
from __future__ import annotations

import subprocess

import numpy as np
from scipy.signal import fftconvolve, welch

from archtool.degrade.base import STAGE_CODEC, Param, register_unit
from archtool.degrade.units.bandlimit import bandlimit_severity

OPUS_BANDWIDTHS = (4000, 6000, 8000, 12000, 20000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    from archtool.audio.ffmpeg import ffmpeg_executable

    proc = subprocess.run([ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", *args],
                          input=data, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg codec round trip failed: {msg[-1] if msg else 'no output'}")
    return proc.stdout


def codec_cutoff(fmt: str, bitrate_kbps: int, sample_rate: int, cutoff_hz: float) -> int:
    """The low-pass the encoder is told to use: explicit, or 250 Hz per kbit/s (32 kbit/s -> 8 kHz)."""
    want = cutoff_hz if cutoff_hz > 0 else 250.0 * bitrate_kbps
    if fmt == "opus":
        allowed = [b for b in OPUS_BANDWIDTHS if b <= max(want, OPUS_BANDWIDTHS[0])]
        return int(allowed[-1])
    return int(min(want, 0.95 * sample_rate / 2))


def align(decoded: np.ndarray, reference: np.ndarray, max_lag: int) -> np.ndarray:
    """Drop the codec delay: shift ``decoded`` (C, m) left by the lag in [0, max_lag] that best
    correlates with ``reference`` (C, n), then cut or zero-pad to n samples."""
    n = reference.shape[1]
    a = reference.mean(axis=0)
    b = decoded.mean(axis=0)
    lag = 0
    if np.any(a) and np.any(b):
        corr = fftconvolve(b, a[::-1], mode="full")
        window = corr[n - 1: n + max_lag]
        lag = int(np.argmax(window)) if window.size else 0
    out = decoded[:, lag:lag + n]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return out


def measured_cutoff(reference: np.ndarray, output: np.ndarray, sample_rate: int,
                    drop_db: float = 20.0) -> float | None:
    """Lowest frequency above which the output's spectrum stays >= ``drop_db`` below the reference's
    (bands where the reference itself is 60 dB under its peak are ignored). None if never."""
    nper = min(1024, reference.shape[-1])
    f, p_ref = welch(reference.mean(axis=0), sample_rate, nperseg=nper)
    _, p_out = welch(output.mean(axis=0), sample_rate, nperseg=nper)
    live = p_ref > p_ref.max() * 1e-6
    below = (p_out <= p_ref * 10 ** (-drop_db / 10)) | ~live
    if not below[-1]:
        return None
    above_ok = np.flip(np.logical_and.accumulate(np.flip(below)))
    first = int(np.argmax(above_ok))
    return float(f[first]) if first > 0 else None


@register_unit("codec", "bandlimit", {
    "format": Param(str, "mp3", "codec", choices=("mp3", "opus")),
    "bitrate_kbps": Param(int, 32, "bitrate (kbit/s)", 6, 320),
    "cutoff_hz": Param(float, 0.0, "encoder low-pass (Hz); 0 = 250 Hz per kbit/s (Opus: nearest band below)",
                       0.0, 24000.0),
}, stage=STAGE_CODEC)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Encode and decode with ffmpeg (libmp3lame / libopus) through pipes, realigned.

    Severity: bandlimit_severity of the measured cutoff, plus 0.3 below 24 kbit/s
    (audible coding noise), capped at 1.
    """
    c, n = audio.shape
    fmt, kbps = params["format"], params["bitrate_kbps"]
    cutoff = codec_cutoff(fmt, kbps, sample_rate, params["cutoff_hz"])
    raw = np.ascontiguousarray(np.clip(audio, -1, 1).T).astype("<f4").tobytes()
    pcm_in = ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(c), "-i", "pipe:"]
    if fmt == "mp3":
        enc = ["-c:a", "libmp3lame", "-b:a", f"{kbps}k", "-cutoff", str(cutoff), "-f", "mp3", "pipe:"]
    else:
        enc_rate = min((r for r in OPUS_RATES if r >= min(sample_rate, 48000)), default=48000)
        enc = ["-ar", str(enc_rate), "-c:a", "libopus", "-b:a", f"{kbps}k", "-cutoff", str(cutoff),
               "-f", "ogg", "pipe:"]
    coded = _ffmpeg(pcm_in + enc, raw)
    dec = _ffmpeg(["-f", "mp3" if fmt == "mp3" else "ogg", "-i", "pipe:", "-f", "f32le", "-ar",
                   str(sample_rate), "-ac", str(c), "pipe:"], coded)
    decoded = np.frombuffer(dec, dtype="<f4").reshape(-1, c).T.astype(np.float64)
    out = align(decoded, audio.astype(np.float64), max_lag=int(0.1 * sample_rate))
    measured = measured_cutoff(audio.astype(np.float64), out, sample_rate)
    band = bandlimit_severity(measured, sample_rate) if measured is not None else 0.0
    sev = min(1.0, band + (0.3 if kbps < 24 else 0.0))
    return out.astype(np.float32), {"severity": float(sev), "cutoff_hz": measured,
                                    "encoder_cutoff_hz": float(cutoff), "format": fmt, "bitrate_kbps": kbps}
