"""Rebuild sample_data/ from ../shared/data (maintainers only; the demo needs only sample_data/).

Two real historical excerpts, and four clean recordings with simulated defects made by
archtool's own degrade units with fixed parameters and seeds, so the demo has something
to find and restore. Sources and licences: sample_data/CREDITS.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.degrade import apply_unit

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "sample_data"


def excerpt(rel: str, start_s: float, seconds: float, rate: int | None = None, mono: bool = False):
    x, sr = read_audio(SHARED / rel)
    x = x[:, int(start_s * sr): int((start_s + seconds) * sr)]
    if mono:
        x = x.mean(axis=0, keepdims=True)
    if rate and rate != sr:
        from math import gcd

        g = gcd(rate, sr)
        x = resample_poly(x, rate // g, sr // g, axis=1).astype(np.float32)
        sr = rate
    return x.astype(np.float32), sr


def degrade(x, sr, steps, seed):
    rng = np.random.default_rng(seed)
    for unit, params in steps:
        x, _ = apply_unit(unit, x, sr, params, rng)
    return np.clip(x, -1, 1).astype(np.float32)


def main() -> int:
    if not SHARED.is_dir():
        print(f"needs {SHARED}", file=sys.stderr)
        return 1
    OUT.mkdir(exist_ok=True)
    clips = {}
    clips["jfk_inaugural_1961_excerpt.flac"] = excerpt("historical/jfk_inaugural_1961.flac", 0, 6)
    clips["hf_radio_ve9qrp_excerpt.flac"] = excerpt("historical/hf_radio_ve9qrp_1.flac", 0, 6)
    x, sr = excerpt("speech/cmu_arctic_us_aew_a0001.flac", 0, 3.88)
    clips["speech_clicks_and_hum.flac"] = (degrade(x, sr, [("hum", {"freq_hz": 50, "snr_db": 18}),
                                                          ("clicks", {"rate_hz": 5})], 11), sr)
    x, sr = excerpt("music/brahms_hungarian5_strings_0.flac", 0, 6, rate=22050, mono=True)
    clips["strings_78rpm_transfer.flac"] = (degrade(x, sr, [("lowpass", {"cutoff_hz": 5000}),
                                                           ("surface_noise", {"snr_db": 16}),
                                                           ("crackle", {"rate_hz": 40})], 12), sr)
    x, sr = excerpt("music/tchaikovsky_sugarplum_macleod_0.flac", 0, 5)
    clips["orchestra_tape_hiss_clipped.flac"] = (degrade(x, sr, [("hiss", {"snr_db": 22}),
                                                                ("clipping", {"fraction": 0.02, "mode": "hard"})], 13), sr)
    x, sr = excerpt("speech/vctk_p286_011.flac", 0.5, 4, rate=16000)
    clips["speech_dropouts.flac"] = (degrade(x, sr, [("gaps", {"count": 3, "min_ms": 20, "max_ms": 120})], 14), sr)
    for name, (audio, rate) in clips.items():
        write_audio(OUT / name, audio, rate, OutputSpec("flac", 16))
        print(f"{name}: {audio.shape[0]} ch, {rate} Hz, {audio.shape[1] / rate:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
