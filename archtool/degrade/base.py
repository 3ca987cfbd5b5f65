"""The unit contract: parameters with documented ranges, a registry, shared signal helpers.

A *unit* is one degradation: a pure function ``apply(audio, sample_rate, params, rng,
sources) -> (audio, label)`` where ``audio`` is float32 ``(channels, samples)``, ``params``
a complete dict of parameter values (see :class:`Param`), ``rng`` a numpy Generator (the
only source of randomness) and ``sources`` the optional folders of real noise, impulse
responses and background recordings (:class:`archtool.degrade.sources.Sources`).
The returned array has the input's shape; ``label`` is a JSON-serialisable dict with at
least ``"severity"`` (0..1) and any measured facts (cutoff, gap intervals, time map...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from archtool.kinds import KINDS

#: Reference RMS used when the signal is digital silence and an SNR cannot be relative to it.
SILENCE_REFERENCE_RMS = 0.1


@dataclass(frozen=True)
class Param:
    """One unit parameter: its type, allowed range (inclusive) or choices, default and meaning."""

    type: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def check(self, value: Any) -> str | None:
        """Return a problem description when ``value`` is not allowed, else None."""
        if self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"expected a number, got {type(value).__name__} {value!r}"
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                if isinstance(value, float) and float(value).is_integer():
                    value = int(value)
                else:
                    return f"expected an integer, got {type(value).__name__} {value!r}"
        elif self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                return f"expected true or false, got {type(value).__name__} {value!r}"
        elif self.type is str:
            if not isinstance(value, str):
                return f"expected a string, got {type(value).__name__} {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{value!r} is not one of {', '.join(map(repr, self.choices))}"
        if self.low is not None and value < self.low:
            return f"{value!r} is below the allowed range [{self.low}, {self.high}]"
        if self.high is not None and value > self.high:
            return f"{value!r} is above the allowed range [{self.low}, {self.high}]"
        return None

    def describe(self) -> str:
        if self.choices is not None:
            rng = " | ".join(map(str, self.choices))
        elif self.low is not None or self.high is not None:
            rng = f"[{self.low}, {self.high}]"
        else:
            rng = self.type.__name__
        return f"{rng} (default {self.default!r}): {self.doc}"


UnitFn = Callable[..., tuple[np.ndarray, dict]]


@dataclass(frozen=True)
class Unit:
    """A registered degradation unit."""

    name: str
    kind: str
    params: dict[str, Param]
    apply: UnitFn
    summary: str
    stage: int  # position in the canonical signal chain (lower runs first)
    extra_kinds: tuple[str, ...] = field(default_factory=tuple)

    def resolve(self, params: dict | None) -> dict:
        """Complete ``params`` with defaults; raise ValueError naming a bad or unknown one."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ValueError(f"unit {self.name!r} has no parameter {unknown[0]!r} "
                             f"(known: {', '.join(sorted(self.params))})")
        out = {}
        for key, spec in self.params.items():
            value = params.get(key, spec.default)
            if value is None and spec.default is None:
                out[key] = None
                continue
            problem = spec.check(value)
            if problem:
                raise ValueError(f"unit {self.name!r} parameter {key!r}: {problem}")
            if spec.type is float:
                value = float(value)
            elif spec.type is int:
                value = int(value)
            elif spec.type is bool:
                value = bool(value)
            out[key] = value
        return out


# Canonical order of the signal chain: acoustics (reverb, background), speed errors (so
# that the medium's own noises and every later label are in output time), the medium's
# additive noises, band limitation, lossy coding, then the digitisation faults (DC, gaps,
# clipping last so flat tops and zeroed samples survive exactly).
STAGE_ACOUSTIC, STAGE_MIX, STAGE_SPEED, STAGE_MEDIUM, STAGE_BAND, STAGE_CODEC, STAGE_DC, \
    STAGE_GAPS, STAGE_CLIP = range(0, 90, 10)

_UNITS: dict[str, Unit] = {}


def register_unit(name: str, kind: str, params: dict[str, Param], stage: int,
                  extra_kinds: tuple[str, ...] = ()) -> Callable[[UnitFn], UnitFn]:
    """Decorator registering ``fn`` as unit ``name`` of defect ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unit {name!r}: unknown kind {kind!r}")

    def deco(fn: UnitFn) -> UnitFn:
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else name
        _UNITS[name] = Unit(name, kind, params, fn, summary, stage, tuple(extra_kinds))
        return fn

    return deco


def get_unit(name: str) -> Unit:
    from archtool.degrade import units  # noqa: F401  (registers every unit)
    from archtool.errors import UnknownNameError

    try:
        return _UNITS[name]
    except KeyError:
        raise UnknownNameError("degradation unit", name, list(_UNITS)) from None


def all_units() -> dict[str, Unit]:
    from archtool.degrade import units  # noqa: F401

    return dict(_UNITS)


# ---------------------------------------------------------------------------- helpers

def power(x: np.ndarray) -> float:
    """Mean square over all channels and samples (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def reference_power(audio: np.ndarray) -> float:
    """Power an SNR is relative to: the signal's, or SILENCE_REFERENCE_RMS**2 for silence."""
    p = power(audio)
    return p if p > 1e-20 else SILENCE_REFERENCE_RMS ** 2


def scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that 10*log10(P(signal)/P(noise)) == ``snr_db`` exactly (float64)."""
    noise = np.asarray(noise, dtype=np.float64)
    pn = power(noise)
    if pn <= 0:
        return noise
    return noise * np.sqrt(reference_power(signal) / (pn * 10 ** (snr_db / 10)))


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float | None,
              gain: float | None) -> tuple[np.ndarray, float]:
    """Add ``noise`` at ``snr_db``, or at ``gain`` times the signal RMS when ``gain`` is set.

    Returns ``(float32 audio, actual snr_db of this addition)``.
    """
    if gain is not None:
        snr_db = 200.0 if gain <= 0 else -20 * np.log10(gain)
        if gain <= 0:
            return audio.astype(np.float32, copy=True), float("inf")
    scaled = scale_to_snr(audio, noise, float(snr_db))
    out = (audio.astype(np.float64) + scaled).astype(np.float32)
    achieved = 10 * np.log10(reference_power(audio) / max(power(out.astype(np.float64) - audio), 1e-30))
    return out, float(achieved)


def severity_from_snr(snr_db: float, worst_db: float = 0.0, best_db: float = 40.0) -> float:
    """Linear map of an SNR to 0..1: ``worst_db`` or below -> 1, ``best_db`` or above -> 0."""
    if not np.isfinite(snr_db):
        return 0.0
    return float(np.clip((best_db - snr_db) / (best_db - worst_db), 0.0, 1.0))


def coloured_noise(shape: tuple[int, int], exponent: float, rng: np.random.Generator,
                   sample_rate: int | None = None, f_ref: float = 1000.0) -> np.ndarray:
    """Gaussian noise whose power spectrum follows f**exponent (0 white, -1 pink, -2 brown, +1 blue).

    Shape ``(channels, samples)``, float64, unit RMS. Shaped in the frequency domain;
    the DC bin is zeroed for non-white noise.
    """
    c, n = shape
    white = rng.standard_normal((c, n))
    if exponent == 0 or n < 4:
        return white / max(np.sqrt(np.mean(white ** 2)), 1e-12)
    spec = np.fft.rfft(white, axis=-1)
    f = np.fft.rfftfreq(n, 1.0)
    f[0] = f[1]
    spec *= (f / f[1]) ** (exponent / 2.0)
    spec[..., 0] = 0
    out = np.fft.irfft(spec, n=n, axis=-1)
    return out / max(np.sqrt(np.mean(out ** 2)), 1e-12)


def ensure_2d(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"audio must have shape (channels, samples), got {audio.shape}")
    return audio
