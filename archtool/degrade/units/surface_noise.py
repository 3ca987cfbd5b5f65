"""78 RPM surface noise: real groove noise from a folder, or a synthetic model of it.

The synthetic model (after the descriptions in seed 003 and the gramophone-noise
literature): band-shaped Gaussian hiss whose level is modulated at the rotation rate
(rpm/60 Hz and its harmonics), plus crackle and a few scratches that click once per
revolution. The total is scaled to the requested SNR (or gain) exactly.
"""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, register_unit, severity_from_snr
from archtool.degrade.sources import excerpt
from archtool.degrade.units.clicks import click_shape
from archtool.degrade.units.crackle import crackle_signal
from archtool.degrade.units.noise import GAIN


def synthetic_surface(n: int, sample_rate: int, rpm: float, crackle_rate_hz: float, scratches: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Mono synthetic groove noise of length ``n``, unit RMS."""
    f_rot = rpm / 60.0
    t = np.arange(n) / sample_rate
    # one spectral shaping: f**-0.6 slope, weakest at the extremes of the band (80 Hz, 9 kHz)
    f = np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 1.0)
    shape = f ** -0.3 / np.sqrt(1 + (80.0 / f) ** 4) / np.sqrt(1 + (f / 9000.0) ** 4)
    shape[0] = 0.0
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * shape
    hiss = np.fft.irfft(spec, n=n)
    hiss /= max(np.sqrt(np.mean(hiss ** 2)), 1e-12)
    env = 1.0
    for k, depth in ((1, 0.35), (2, 0.15), (3, 0.08)):
        env = env + depth * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * k * f_rot * t + rng.uniform(0, 2 * np.pi))
    noise = hiss * env
    if crackle_rate_hz > 0:
        noise = noise + 0.8 * crackle_signal(n, sample_rate, crackle_rate_hz, 0.15, rng)
    period = sample_rate / f_rot
    for _ in range(scratches):
        start = rng.uniform(0, period)
        amp = rng.uniform(3.0, 8.0)
        width = max(2, int(sample_rate * rng.uniform(0.3, 1.5) / 1000))
        shape = click_shape("damped", width, rng, sample_rate)
        for p in np.arange(start, n, period).astype(int):
            w = shape[: n - p]
            noise[p:p + w.size] += amp * w * rng.uniform(0.7, 1.0)
    return noise


@register_unit("surface_noise", "surface_noise", {
    "snr_db": Param(float, 20.0, "signal-to-surface-noise ratio in dB", -10.0, 60.0),
    "gain": GAIN,
    "source": Param(str, "auto", "folder: real groove noise from noise_dir; synthetic; auto: folder if "
                    "it holds audio, else synthetic", choices=("auto", "folder", "synthetic")),
    "rpm": Param(float, 78.0, "disc speed (sets the modulation rate rpm/60 Hz)", 16.0, 90.0),
    "crackle_rate_hz": Param(float, 300.0, "crackle impulses per second (synthetic)", 0.0, 5000.0),
    "scratches": Param(int, 1, "scratches clicking once per revolution (synthetic)", 0, 10),
}, stage=STAGE_MEDIUM)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Add 78 RPM surface noise (mono noise on every channel for synthetic; folder noise as recorded).

    Severity: 1 at 0 dB SNR or worse, 0 at 40 dB or better.
    """
    c, n = audio.shape
    folder = None if sources is None else sources.noise
    use_folder = params["source"] == "folder" or (params["source"] == "auto" and bool(folder))
    label: dict = {}
    if use_folder:
        if not folder:
            raise ValueError("surface_noise source='folder' needs a noise folder with audio (--noise-dir)")
        name, src = folder.pick(sample_rate, rng)
        noise, offset = excerpt(src, c, n, rng)
        label |= {"noise_file": name, "noise_offset_s": round(offset / sample_rate, 6)}
    else:
        mono = synthetic_surface(n, sample_rate, params["rpm"], params["crackle_rate_hz"], params["scratches"], rng)
        noise = np.repeat(mono[None], c, axis=0)
    out, snr = add_noise(audio, noise, params["snr_db"], params["gain"])
    return out, label | {"severity": severity_from_snr(snr), "snr_db": snr,
                         "source": "folder" if use_folder else "synthetic"}
