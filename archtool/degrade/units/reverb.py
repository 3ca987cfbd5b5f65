"""Reverberation: convolution with a measured impulse response from a folder, or a synthetic one.

The synthetic IR is a unit direct-path impulse followed (after 1 ms) by Gaussian noise
with an exponential envelope falling 60 dB in ``rt60_s``, scaled so that the ratio of
direct to reverberant energy equals ``drr_db``. IRs are aligned so the direct path sits
at sample 0 with amplitude 1, so the degraded clip stays time-aligned with the clean one.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import oaconvolve

from archtool.degrade.base import STAGE_ACOUSTIC, Param, register_unit
from archtool.degrade.sources import uses_folder


def synthetic_rir(sample_rate: int, rt60_s: float, drr_db: float, rng: np.random.Generator,
                  hf_damping: float = 1.0, crossover_hz: float = 2000.0) -> np.ndarray:
    """Mono synthetic IR (float64): direct impulse at 0 then an exponential noise tail.

    The tail falls 60 dB in ``rt60_s``; with ``hf_damping`` < 1 the part above ``crossover_hz``
    decays faster (its RT60 is ``hf_damping`` x ``rt60_s``), as air and walls absorb highs.
    Length is 1.5 x RT60 (the tail ends 90 dB down), so Schroeder integration recovers RT60.
    """
    n = max(int(1.5 * rt60_s * sample_rate), 16)
    gap = max(1, int(0.001 * sample_rate))
    m = n - gap
    t = np.arange(m) / sample_rate
    noise = rng.standard_normal(m)
    decay = np.exp(-3.0 * np.log(10) * t / rt60_s)
    if hf_damping < 1.0 and crossover_hz < sample_rate / 2:
        f = np.fft.rfftfreq(m, 1 / sample_rate)
        high_share = 1.0 / (1.0 + (crossover_hz / np.maximum(f, 1.0)) ** 4)
        spec = np.fft.rfft(noise)
        low = np.fft.irfft(spec * np.sqrt(1 - high_share), n=m)
        high = np.fft.irfft(spec * np.sqrt(high_share), n=m)
        tail = low * decay + high * np.exp(-3.0 * np.log(10) * t / (rt60_s * hf_damping))
    else:
        tail = noise * decay
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    ir = np.zeros(n)
    ir[0] = 1.0
    ir[gap:] = tail
    return ir


def schroeder_rt60(ir: np.ndarray, sample_rate: int, start_db: float = -5.0, end_db: float = -35.0) -> float:
    """RT60 of an IR by Schroeder backward integration: a line fitted to the energy decay
    curve between ``start_db`` and ``end_db`` (T30 by default), extrapolated to -60 dB."""
    ir = np.asarray(ir, dtype=np.float64).reshape(-1)
    edc = np.cumsum((ir ** 2)[::-1])[::-1]
    edc_db = 10 * np.log10(np.maximum(edc / edc[0], 1e-30))
    idx = np.nonzero((edc_db <= start_db) & (edc_db >= end_db))[0]
    if idx.size < 2:
        return float("nan")
    slope, _ = np.polyfit(idx / sample_rate, edc_db[idx], 1)
    return float(-60.0 / slope) if slope < 0 else float("nan")


def direct_to_reverberant_db(ir: np.ndarray, sample_rate: int, window_ms: float = 2.5) -> float:
    """DRR of an IR aligned with its direct path at 0: energy in the first ``window_ms`` over the rest."""
    ir = np.asarray(ir, dtype=np.float64).reshape(-1)
    k = max(1, int(window_ms * sample_rate / 1000))
    direct, rest = np.sum(ir[:k] ** 2), np.sum(ir[k:] ** 2)
    return float(10 * np.log10(direct / rest)) if rest > 0 else float("inf")


def align_ir(ir: np.ndarray, channels: int) -> np.ndarray:
    """Pick ``channels`` channels of a measured IR ``(c, n)`` (the first ones, or the first one
    repeated) and shift them so the strongest arrival is at sample 0 with amplitude 1."""
    ir = ir[:channels] if ir.shape[0] >= channels else np.repeat(ir[:1], channels, axis=0)
    peak = int(np.argmax(np.sum(np.abs(ir), axis=0)))
    ir = ir[:, peak:].astype(np.float64)
    for ch in range(ir.shape[0]):
        if ir[ch, 0] != 0:
            ir[ch] /= ir[ch, 0]
    return ir


@register_unit("reverb", "reverb", {
    "rt60_s": Param(float, 0.6, "reverberation time of the synthetic IR (s)", 0.1, 4.0),
    "drr_db": Param(float, 3.0, "direct-to-reverberant energy ratio of the synthetic IR (dB)", -15.0, 25.0),
    "hf_damping": Param(float, 1.0, "synthetic IR: RT60 above 2 kHz relative to rt60_s (1 = flat decay)",
                        0.2, 1.0),
    "wet": Param(float, 1.0, "weight of the reverberant part (seed 000's U[0,1] weight; 1 = the IR as is)",
                 0.0, 1.0),
    "source": Param(str, "auto", "folder: rir_dir; synthetic; auto: folder if it holds audio, else synthetic",
                    choices=("auto", "folder", "synthetic")),
}, stage=STAGE_ACOUSTIC)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Convolve with an IR (FFT overlap-add), keeping the input's length and alignment.

    output = x + wet * (x * h_late), h_late being the IR without its direct path.
    Labels the RT60 (Schroeder, broadband) and effective DRR of the IR actually used. Severity: mean of
    clip(rt60/2 s) and clip((15 - DRR) / 30 dB) (0 when wet = 0).
    """
    c, n = audio.shape
    folder = None if sources is None else sources.rir
    use_folder = uses_folder(folder, params["source"], "reverb", "an impulse-response folder with audio (--rir-dir)")
    label: dict = {}
    if use_folder:
        name, ir = folder.pick(sample_rate, rng)
        ir = align_ir(ir, c)
        label["rir_file"] = name
    else:
        ir = synthetic_rir(sample_rate, params["rt60_s"], params["drr_db"], rng, params["hf_damping"])
        ir = np.repeat(ir[None], c, axis=0)
    late = ir.copy()
    late[:, 0] = 0.0
    wet = params["wet"]
    out = audio.astype(np.float64)
    if wet > 0:
        out = out + wet * oaconvolve(audio.astype(np.float64), late, axes=-1)[:, :n]
    rt60 = schroeder_rt60(ir[0], sample_rate)
    late_energy = wet ** 2 * float(np.sum(late[0] ** 2))
    drr = float(10 * np.log10(1.0 / late_energy)) if late_energy > 0 else float("inf")
    sev = 0.0 if wet == 0 else float(0.5 * min(1.0, rt60 / 2.0) + 0.5 * np.clip((15.0 - drr) / 30.0, 0, 1))
    return out.astype(np.float32), label | {"severity": sev, "rt60_s": rt60, "drr_db": drr,
                                            "source": "folder" if use_folder else "synthetic"}
