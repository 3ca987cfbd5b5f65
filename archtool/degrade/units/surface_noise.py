"""78 RPM surface noise: real groove noise from a folder, or a synthetic model of it.

The synthetic model (after the descriptions in seed 003 and the gramophone-noise
literature): band-shaped Gaussian hiss whose level is modulated at the rotation rate
(rpm/60 Hz and its harmonics), plus crackle and a few scratches that click once per
revolution. The total is scaled to the requested SNR (or gain) exactly.
"""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MEDIUM, Param, add_noise, power, reference_power, register_unit, \
    severity_from_snr
from archtool.degrade.sources import folder_excerpt, uses_folder
from archtool.degrade.units.clicks import click_shape
from archtool.degrade.units.crackle import crackle_signal
from archtool.degrade.units.noise import GAIN


def synthetic_surface(n: int, sample_rate: int, rpm: float, crackle_rate_hz: float, scratches: int,
                      rng: np.random.Generator) -> dict:
    """Mono synthetic groove noise components of length ``n`` (float64), before level scaling:
    ``hiss`` (modulated, unit RMS), ``crackle``, ``scratch`` and ``scratch_times`` / ``scratch_amps``
    (onsets in samples and peak amplitudes of the once-per-revolution clicks)."""
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
    crackle = np.zeros(n)
    if crackle_rate_hz > 0:
        crackle = 0.8 * crackle_signal(n, sample_rate, crackle_rate_hz, 0.15, rng)
    scratch = np.zeros(n)
    times: list[int] = []
    amps: list[float] = []
    period = sample_rate / f_rot
    for _ in range(scratches):
        start = rng.uniform(0, period)
        amp = rng.uniform(3.0, 8.0)
        width = max(2, int(sample_rate * rng.uniform(0.3, 1.5) / 1000))
        wave = click_shape("damped", width, rng, sample_rate)
        for p in np.arange(start, n, period).astype(int):
            w = wave[: n - p]
            a = amp * rng.uniform(0.7, 1.0)
            scratch[p:p + w.size] += a * w
            times.append(int(p))
            amps.append(float(a))
    return {"hiss": hiss * env, "crackle": crackle, "scratch": scratch, "scratch_times": times,
            "scratch_amps": amps}


@register_unit("surface_noise", "surface_noise", {
    "snr_db": Param(float, 20.0, "signal-to-surface-noise ratio in dB", -10.0, 60.0),
    "gain": GAIN,
    "source": Param(str, "auto", "folder: real groove noise from noise_dir; synthetic; auto: folder if "
                    "it holds audio, else synthetic", choices=("auto", "folder", "synthetic")),
    "rpm": Param(float, 78.0, "disc speed (sets the modulation rate rpm/60 Hz)", 16.0, 90.0),
    "crackle_rate_hz": Param(float, 300.0, "crackle impulses per second (synthetic)", 0.0, 5000.0),
    "scratches": Param(int, 1, "scratches clicking once per revolution (synthetic)", 0, 10),
}, stage=STAGE_MEDIUM, extra_kinds=("crackle", "clicks"))
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Add 78 RPM surface noise (mono noise on every channel for synthetic; folder noise as recorded).

    Severity: 1 at 0 dB SNR or worse, 0 at 40 dB or better. The synthetic model's crackle
    and scratch clicks are also labelled as kinds ``crackle`` (by their own SNR, as the
    crackle unit) and ``clicks`` (as the clicks unit), with ``click_times_s``.
    """
    c, n = audio.shape
    folder = None if sources is None else sources.noise
    use_folder = uses_folder(folder, params["source"], "surface_noise", "a noise folder with audio (--noise-dir)")
    label: dict = {}
    if use_folder:
        noise, label = folder_excerpt(folder, c, n, sample_rate, rng, "noise")
    else:
        parts = synthetic_surface(n, sample_rate, params["rpm"], params["crackle_rate_hz"], params["scratches"], rng)
        mono = parts["hiss"] + parts["crackle"] + parts["scratch"]
        noise = np.repeat(mono[None], c, axis=0)
    out, snr = add_noise(audio, noise, params["snr_db"], params["gain"])
    sev = severity_from_snr(snr)
    label |= {"severity": sev, "snr_db": snr, "source": "folder" if use_folder else "synthetic"}
    if not use_folder and np.isfinite(snr):
        # the synthetic model also contains crackle and clicks: label them as those kinds too
        ref = reference_power(audio)
        g2 = ref / (10 ** (snr / 10) * max(power(mono), 1e-30))
        kinds = {"surface_noise": sev}
        if np.any(parts["crackle"]):
            snr_c = 10 * np.log10(ref / (g2 * power(parts["crackle"])))
            kinds["crackle"] = severity_from_snr(snr_c, 5.0, 45.0)
            label["crackle_snr_db"] = float(snr_c)
        if parts["scratch_times"]:
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            peak = peak if peak > 1e-6 else 0.1
            rel = np.sqrt(g2) * np.mean(parts["scratch_amps"]) / peak
            rate = len(parts["scratch_times"]) / (n / sample_rate)
            kinds["clicks"] = float(min(1.0, np.sqrt(rate / 10.0) * rel / 0.5))
            label["click_times_s"] = [round(p / sample_rate, 6) for p in parts["scratch_times"]]
        label["kinds"] = kinds
    return out, label
