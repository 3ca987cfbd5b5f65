"""Background mixture: another recording (from a folder, or a synthetic babble) at a target SNR."""
from __future__ import annotations

import numpy as np

from archtool.degrade.base import STAGE_MIX, Param, add_noise, coloured_noise, register_unit, \
    severity_from_snr
from archtool.degrade.sources import folder_excerpt, uses_folder
from archtool.degrade.units.noise import GAIN


def synthetic_babble(n: int, sample_rate: int, voices: int, rng: np.random.Generator) -> np.ndarray:
    """Mono babble-like ambience: ``voices`` band-passed pink noises, each gated by a random
    syllable-rate (2-7 Hz) envelope with pauses. Unit RMS."""
    t = np.arange(n) / sample_rate
    f = np.maximum(np.fft.rfftfreq(n, 1 / sample_rate), 1.0)
    centres = rng.uniform(300, 1500, (voices, 1))
    shape = np.exp(-0.5 * (np.log(f[None] / centres) / 0.8) ** 2) / np.sqrt(f[None])  # pink, band-passed
    spec = (rng.standard_normal((voices, f.size)) + 1j * rng.standard_normal((voices, f.size))) * shape
    x = np.fft.irfft(spec, n=n, axis=-1)
    x /= np.maximum(np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True)), 1e-12)
    rates = rng.uniform(2.0, 7.0, (voices, 1))
    syll = np.maximum(0.0, np.sin(2 * np.pi * rates * t[None] + rng.uniform(0, 2 * np.pi, (voices, 1)))) ** 2
    knots = max(4, int(n / sample_rate * 1.5) + 3)
    grid = np.linspace(0, knots - 3, n)
    pauses = np.stack([np.interp(grid, np.arange(knots), rng.uniform(0, 1, knots) > 0.3) for _ in range(voices)])
    out = np.sum(x * syll * pauses * rng.uniform(0.5, 1.0, (voices, 1)), axis=0)
    rms = np.sqrt(np.mean(out ** 2))
    return out / rms if rms > 0 else coloured_noise((1, n), -1.0, rng)[0]


@register_unit("background", "background", {
    "snr_db": Param(float, 10.0, "signal-to-background ratio in dB", -10.0, 60.0),
    "gain": GAIN,
    "source": Param(str, "auto", "folder: background_dir; synthetic: babble; auto: folder if it holds "
                    "audio, else synthetic", choices=("auto", "folder", "synthetic")),
    "voices": Param(int, 4, "talkers in the synthetic babble", 1, 12),
}, stage=STAGE_MIX)
def apply(audio: np.ndarray, sample_rate: int, params: dict, rng: np.random.Generator, sources=None):
    """Mix in a background recording (random file and offset, looped if short).

    Severity: 1 at 0 dB SNR or worse, 0 at 30 dB or better.
    """
    c, n = audio.shape
    folder = None if sources is None else sources.background
    use_folder = uses_folder(folder, params["source"], "background", "a background folder with audio")
    label: dict = {}
    if use_folder:
        bg, label = folder_excerpt(folder, c, n, sample_rate, rng, "background")
    else:
        bg = np.repeat(synthetic_babble(n, sample_rate, params["voices"], rng)[None], c, axis=0)
    out, snr = add_noise(audio, bg, params["snr_db"], params["gain"])
    return out, label | {"severity": severity_from_snr(snr, 0.0, 30.0), "snr_db": snr,
                         "source": "folder" if use_folder else "synthetic"}
