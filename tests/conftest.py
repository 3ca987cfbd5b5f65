"""Shared fixtures: seeded generators, small synthetic signals, the shared corpus path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository (skips the test when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def tone(freq_hz: float = 440.0, seconds: float = 1.0, sample_rate: int = 44100, channels: int = 1,
         amplitude: float = 0.3) -> np.ndarray:
    """A sine with 10 ms fades, float32 ``(channels, samples)``; channel k is detuned by k Hz."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    x = np.stack([amplitude * np.sin(2 * np.pi * (freq_hz + k) * t) for k in range(channels)])
    fade = min(n // 2, int(0.01 * sample_rate))
    if fade:
        ramp = np.linspace(0, 1, fade)
        x[:, :fade] *= ramp
        x[:, -fade:] *= ramp[::-1]
    return x.astype(np.float32)


def speech_like(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic signal with syllable-rate envelope, float32 ``(1, samples)``."""
    g = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum((0.5 / k) * np.sin(k * phase) for k in range(1, 20) if k * 140 < sample_rate / 2)
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + g.uniform(0, 6.28))) ** 2
    return (0.2 * x * env / np.abs(x * env).max()).astype(np.float32)[None]


def run_in_engine_blocks(x: np.ndarray, rate: int, steps: list, block_s: float, seed: int = 0) -> np.ndarray:
    """``steps`` over ``x`` ``(C, N)`` as the engine runs them, in blocks of ``block_s`` seconds."""
    from archtool.engine.chunking import restore_in_blocks

    return restore_in_blocks(x, rate, steps, block_s, seed=seed)
