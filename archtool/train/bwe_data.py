"""Training pairs for bandwidth extension and phone enhancement, made on the fly.

Every function takes an explicit ``np.random.Generator``; signals are float64 numpy
``(N,)`` mono at the stated rate. The four downsampling schemes follow seed 002
(Wang & Wang, "Towards Robust Speech Super-Resolution"): Chebyshev type I order 8
low-pass then plain subsampling, ``scipy.signal.decimate``, polyphase resampling, and a
random mix of the three; the low-rate signal is brought back to the target rate with a
polyphase (windowed-sinc) resampler, which is the network's input.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal

from archtool.audio.io import read_audio

SCHEMES = ("cheby_subsample", "decimate", "resample", "mix")

# Clips never used for training: evaluation only (whole speakers / whole pieces held out).
HELD_OUT_SPEECH = ("cmu_arctic_us_axb_a0004", "cmu_arctic_us_axb_a0006", "librispeech_5703-47212-0000",
                   "vctk_msp_4", "vctk_msp_5")
HELD_OUT_MUSIC = ("sweet_waltz_setuniman_0", "sweet_waltz_setuniman_1", "solo_trumpet_sorohan_0")
HELD_OUT_NOISE = ("room_noise_rec_0", "sheep")
# shared/data/speech_eval (never trained on): clips for tuning the phone preset's settings;
# the rest of that folder joins the benchmark (see :func:`phone_eval_clips`).
PHONE_VALIDATION = ("cmu_arctic_arctic_a0007", "cmu_arctic_arctic_a0008", "cmu_arctic_arctic_a0009",
                    "sisec2011_dev1_female4_src_4", "sisec2011_dev1_male4_src_4")


@dataclass
class Clip:
    """One mono clip of a corpus at its native rate."""

    name: str
    audio: np.ndarray  # (N,) float64
    rate: int


def load_clips(folder: Path, held_out: bool, names: tuple[str, ...]) -> list[Clip]:
    """Clips of ``folder`` (sorted) whose stem is (``held_out``) or is not in ``names``.

    Multichannel clips become one mono clip per channel.
    """
    clips = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in {".flac", ".wav", ".ogg", ".mp3"}:
            continue
        if (path.stem in names) != held_out:
            continue
        audio, rate = read_audio(path)
        for ch in range(audio.shape[0]):
            clips.append(Clip(f"{path.stem}#{ch}" if audio.shape[0] > 1 else path.stem,
                              audio[ch].astype(np.float64), rate))
    return clips


def sources_of(folder: Path, clips: list[Clip]) -> list[dict[str, str]]:
    """Source and licence rows of MANIFEST.csv (beside ``folder``) for the clips used."""
    manifest = Path(folder).parent / "MANIFEST.csv"
    stems = {c.name.split("#")[0] for c in clips}
    rows = []
    if manifest.exists():
        with manifest.open() as fh:
            for row in csv.reader(fh):
                if len(row) >= 3 and Path(row[0]).stem in stems:
                    rows.append({"file": row[0], "source": row[1], "licence": row[2]})
    return rows


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase (Kaiser windowed-sinc) resampling of ``x`` ``(..., N)``."""
    if rate_in == rate_out:
        return x
    frac = Fraction(rate_out, rate_in)
    return signal.resample_poly(x, frac.numerator, frac.denominator, axis=-1)


def downsample(x: np.ndarray, rate: int, low_rate: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """``x`` at ``rate`` brought to ``low_rate`` with one of :data:`SCHEMES`."""
    if scheme == "mix":
        scheme = SCHEMES[int(rng.integers(0, 3))]
    ratio = rate / low_rate
    integer = abs(ratio - round(ratio)) < 1e-9
    if scheme == "resample" or (scheme == "decimate" and not integer):
        return resample(x, rate, low_rate)
    if scheme == "decimate":
        return signal.decimate(x, int(round(ratio)), ftype="iir", zero_phase=True)
    sos = signal.cheby1(8, 0.05, 0.8 / ratio, output="sos")
    y = signal.sosfilt(sos, x)
    if integer:
        return y[::int(round(ratio))]
    return resample(y, rate, low_rate)


def bandlimit_pair(x: np.ndarray, rate: int, low_rate: int, scheme: str,
                   rng: np.random.Generator) -> np.ndarray:
    """The band-limited version of ``x`` at ``rate`` (low-rate round trip, same length)."""
    y = resample(downsample(x, rate, low_rate, scheme, rng), low_rate, rate)
    out = np.zeros_like(x)
    out[:min(len(x), len(y))] = y[:len(x)]
    return out


def lowpass_music(x: np.ndarray, rate: int, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Low-pass ``x`` at ``cutoff_hz`` with a random filter: Butterworth (order 6-16, zero
    phase), Chebyshev I order 8, FFT brick wall, or a polyphase round trip."""
    kind = int(rng.integers(0, 4))
    wn = cutoff_hz / (rate / 2)
    if kind == 0:
        sos = signal.butter(int(rng.integers(3, 9)), wn, output="sos")
        return signal.sosfiltfilt(sos, x)
    if kind == 1:
        return signal.sosfilt(signal.cheby1(8, 0.05, wn, output="sos"), x)
    if kind == 2:
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(len(x), 1 / rate) >= cutoff_hz] = 0
        return np.fft.irfft(spec, n=len(x))
    low = int(round(2 * cutoff_hz / 50.0)) * 50
    y = resample(resample(x, rate, low), low, rate)
    out = np.zeros_like(x)
    out[:min(len(x), len(y))] = y[:len(x)]
    return out


def phone_degrade(x: np.ndarray, rate: int, noise: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A phone-like version of clean speech ``x`` at ``rate`` (same rate and length).

    Room/background noise at 5-30 dB SNR, a random microphone colouring (tilt and one
    peak, +-6 dB), telephone band-pass (200-400 Hz to 3.2-3.6 kHz), 8 kHz narrowband
    transfer, 8-bit mu-law companding half of the time, and a little line noise.
    """
    y = x.copy()
    p_sig = np.mean(x ** 2) + 1e-12
    if noise is not None and len(noise) > 0:
        start = int(rng.integers(0, max(1, len(noise) - len(x))))
        n = np.resize(noise[start:start + len(x)], len(x))
        snr = rng.uniform(5.0, 30.0)
        y = y + n * np.sqrt(p_sig / (np.mean(n ** 2) + 1e-12) / 10 ** (snr / 10))
    tilt = rng.uniform(-6.0, 6.0)
    freqs = np.fft.rfftfreq(len(y), 1 / rate)
    octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
    peak_f, peak_db = rng.uniform(500, 3000), rng.uniform(-6.0, 6.0)
    shape_db = tilt * octaves / 2 + peak_db * np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / peak_f) / 0.4) ** 2)
    y = np.fft.irfft(np.fft.rfft(y) * 10 ** (shape_db / 20), n=len(y))
    lo, hi = rng.uniform(200, 400), rng.uniform(3200, 3600)
    sos = signal.butter(int(rng.integers(2, 5)), [lo / (rate / 2), hi / (rate / 2)], btype="band", output="sos")
    y = signal.sosfilt(sos, y)
    nb = resample(y, rate, 8000)
    if rng.random() < 0.5:
        peak = np.max(np.abs(nb)) + 1e-9
        mu = 255.0
        comp = np.sign(nb / peak) * np.log1p(mu * np.abs(nb / peak)) / np.log1p(mu)
        comp = np.round(comp * 127) / 127
        nb = peak * np.sign(comp) * np.expm1(np.abs(comp) * np.log1p(mu)) / mu
    nb = nb + rng.normal(0, 1, len(nb)) * np.sqrt(p_sig) * 10 ** (-rng.uniform(35, 50) / 20)
    out = resample(nb, 8000, rate)
    res = np.zeros_like(x)
    res[:min(len(x), len(out))] = out[:len(x)]
    return res


def _parts(clip: Clip, rate: int, parts_if_long: int) -> list[Clip]:
    """``clip`` at ``rate``, cut in ``parts_if_long`` equal parts when it is 8 s or longer."""
    a = resample(clip.audio, clip.rate, rate)
    parts = 1 if len(a) < 8 * rate else parts_if_long
    step = len(a) // parts
    return [Clip(f"{clip.name}@{k}" if parts > 1 else clip.name, a[k * step:(k + 1) * step], rate)
            for k in range(parts)]


def phone_eval_clips(data: Path, split: str, rate: int = 16000) -> list[Clip]:
    """Clean speech for judging or tuning phone enhancement, at ``rate``.

    ``split`` ``"benchmark"``: the held-out clips of ``data/speech`` (never trained on) plus
    the clips of ``data/speech_eval`` not in :data:`PHONE_VALIDATION`, clips of 8 s or more
    cut in three parts; ``"validation"``: the :data:`PHONE_VALIDATION` clips of
    ``data/speech_eval``, long ones cut in halves (for choosing settings; never the
    benchmark's clips); ``"tune"``: the *training* clips of ``data/speech`` (not held out),
    long ones cut in three: for choosing settings when ``speech_eval`` is absent (the
    enhancer has seen these voices, so they flatter it).
    """
    if split not in ("benchmark", "validation", "tune"):
        raise ValueError(f"split {split!r}: benchmark, validation or tune")
    out: list[Clip] = []
    if split in ("benchmark", "tune"):
        for c in load_clips(Path(data) / "speech", split == "benchmark", HELD_OUT_SPEECH):
            out += _parts(c, rate, 3)
    extra = Path(data) / "speech_eval"
    if extra.is_dir() and split != "tune":
        for c in load_clips(extra, split == "validation", PHONE_VALIDATION):
            out += _parts(c, rate, 3 if split == "benchmark" else 2)
    return out


def phone_pairs(data: Path, split: str, rate: int = 16000,
                draws: int = 1) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(simulation, clip, clean, degraded)`` float32 ``(N,)`` pairs at ``rate`` for every clip
    of ``split`` (:func:`phone_eval_clips`, levelled to RMS 0.1) through two simulations:
    ``degrade_phone_recipe`` (the team's ``phone`` degradation recipe with background noises)
    and ``telephone_channel`` (:func:`phone_degrade` with one noise). The benchmark and
    validation splits use the held-out noises only, the tune split the others. Seeded per
    split, clip index and draw (``draws`` independent degradations of each clip; clip
    names get ``~d`` for draws after the first), so the pairs are the same on every call."""
    import tempfile

    from archtool.degrade import Degrader
    data = Path(data)
    clips = phone_eval_clips(data, split, rate)
    held = split != "tune"
    noises = load_clips(data / "background", held, HELD_OUT_NOISE)
    base = {"benchmark": 77, "validation": 78, "tune": 79}[split]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        bg = Path(tmp) / "bg"
        bg.mkdir()
        for f in sorted((data / "background").iterdir()):
            if (f.stem in HELD_OUT_NOISE) == held:
                (bg / f.name).symlink_to(f.resolve())
        deg = Degrader("phone", rir_dir=data / "rir", background_dir=bg)
        for sim in ("degrade_phone_recipe", "telephone_channel"):
            for d in range(draws):
                for i, clip in enumerate(clips):
                    rng = np.random.default_rng([base, i] if d == 0 else [base, i, d])
                    s = clip.audio / (np.sqrt(np.mean(clip.audio ** 2)) + 1e-12) * 0.1
                    if sim == "degrade_phone_recipe":
                        x = np.asarray(deg(s[None].astype(np.float32), rate, rng)[0][0], np.float64)
                    else:
                        nc = noises[(i + d) % len(noises)]
                        x = phone_degrade(s, rate, resample(nc.audio, nc.rate, rate), rng)
                    name = clip.name if d == 0 else f"{clip.name}~{d}"
                    out.append((sim, name, s.astype(np.float32), x.astype(np.float32)))
    return out


def random_segment(clip: Clip, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``seconds`` segment of ``clip`` resampled to ``rate`` with a random level
    (RMS 0.03-0.2), zero-padded when the clip is short."""
    n = int(round(seconds * clip.rate))
    a = clip.audio
    if len(a) > n:
        start = int(rng.integers(0, len(a) - n))
        a = a[start:start + n]
    seg = resample(a, clip.rate, rate)
    want = int(round(seconds * rate))
    seg = np.pad(seg, (0, max(0, want - len(seg))))[:want]
    rms = np.sqrt(np.mean(seg ** 2)) + 1e-9
    return seg * (10 ** rng.uniform(np.log10(0.03), np.log10(0.2)) / rms)
