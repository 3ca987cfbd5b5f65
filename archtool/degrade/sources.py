"""Folders of real material for the units: 78 RPM groove noise, impulse responses, backgrounds.

Files are listed once (recursively, sorted so choices are reproducible), decoded on first
use and cached per sample rate, so a training loop pays the decoding cost once.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aif", ".aiff", ".m4a", ".wv", ".aac"}


def list_audio(folder: str | Path | None) -> list[Path]:
    """Audio files under ``folder`` (recursive, by extension), sorted; [] when None."""
    if folder is None:
        return []
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        from archtool.errors import UsageError

        raise UsageError(f"{folder}: folder not found")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of ``(channels, n)`` audio between integer rates."""
    if from_rate == to_rate:
        return audio
    frac = Fraction(int(to_rate), int(from_rate)).limit_denominator(1000)
    return resample_poly(audio, frac.numerator, frac.denominator, axis=-1).astype(np.float32)


class Folder:
    """One folder of audio: a sorted file list and a decode cache keyed by (file, rate)."""

    def __init__(self, path: str | Path | None, cache_limit_samples: int = 50_000_000):
        self.path = None if path is None else Path(path)
        self.files = list_audio(self.path)
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._cached = 0
        self._limit = cache_limit_samples
        self._bad: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self.files)

    def load(self, index: int, sample_rate: int) -> np.ndarray:
        """Decode file ``index`` as float32 ``(channels, n)`` at ``sample_rate`` (cached)."""
        key = (index, int(sample_rate))
        if key not in self._cache:
            from archtool.audio.io import read_audio

            audio, rate = read_audio(self.files[index])
            audio = resample(audio, rate, sample_rate)
            if self._cached + audio.size <= self._limit:
                self._cache[key] = audio
                self._cached += audio.size
            return audio
        return self._cache[key]

    def pick(self, sample_rate: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        """A random usable file: ``(name relative to the folder, audio)``.

        An undecodable or silent file is replaced by the next file in sorted order, so the
        choice depends only on ``rng`` (not on which files this process met before).
        """
        from archtool.errors import ArchtoolError

        if not self.files:
            raise LookupError(f"{self.path}: no audio file")
        first = int(rng.integers(len(self.files)))
        for k in range(len(self.files)):
            i = (first + k) % len(self.files)
            if i in self._bad:
                continue
            try:
                audio = self.load(i, sample_rate)
            except ArchtoolError:
                self._bad.add(i)
                continue
            if audio.shape[1] == 0 or not np.any(audio):
                self._bad.add(i)
                continue
            assert self.path is not None
            name = self.files[i].name if self.path.is_file() else self.files[i].relative_to(self.path).as_posix()
            return name, audio
        raise LookupError(f"{self.path}: no usable audio file")


class Sources:
    """The optional real-material folders passed to units (None -> synthetic generation)."""

    def __init__(self, noise_dir: str | Path | None = None, rir_dir: str | Path | None = None,
                 background_dir: str | Path | None = None):
        self.noise = Folder(noise_dir)
        self.rir = Folder(rir_dir)
        self.background = Folder(background_dir)


def uses_folder(folder: "Folder | None", source: str, unit: str, needs: str) -> bool:
    """Whether a unit draws from its folder: ``source`` is ``folder``, or ``auto`` with a
    folder given. Raises ValueError when ``folder`` is asked for but there is none."""
    use = source == "folder" or (source == "auto" and bool(folder))
    if use and not folder:
        raise ValueError(f"{unit} source='folder' needs {needs}")
    return use


def excerpt(source: np.ndarray, channels: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A random ``(channels, n)`` excerpt of ``source`` (looped when shorter); returns (x, offset)."""
    src = source
    if src.shape[0] != channels:
        src = np.repeat(src.mean(axis=0, keepdims=True), channels, axis=0) if src.shape[0] < channels \
            else src[:channels]
    total = src.shape[1]
    if total >= n:
        off = int(rng.integers(0, total - n + 1))
        return src[:, off:off + n].astype(np.float64), off
    reps = int(np.ceil(n / total)) + 1
    off = int(rng.integers(0, total))
    return np.tile(src, (1, reps))[:, off:off + n].astype(np.float64), off


def folder_excerpt(folder: "Folder", channels: int, n: int, sample_rate: int, rng: np.random.Generator,
                   label_key: str) -> tuple[np.ndarray, dict]:
    """A random ``(channels, n)`` excerpt of a random file of ``folder`` and its label:
    ``{label_key}_file`` and ``{label_key}_offset_s``.

    The excerpt's DC is removed: a noise or background recording with an offset would add a
    DC offset that the corpus's labels do not record (DC offset is its own unit).
    """
    name, src = folder.pick(sample_rate, rng)
    x, offset = excerpt(src, channels, n, rng)
    x -= x.mean(axis=1, keepdims=True)
    return x, {f"{label_key}_file": name, f"{label_key}_offset_s": round(offset / sample_rate, 6)}
