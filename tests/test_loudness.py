"""Loudness: streaming meter equals pyloudnorm; normalisation hits the target under the ceiling."""
from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest

from archtool.audio.loudness import (LoudnessMeter, TruePeakMeter, decide_gain, integrated_loudness,
                                     normalize_loudness, true_peak_dbtp)
from conftest import speech_like, tone


@pytest.mark.parametrize("rate,channels", [(8000, 1), (22050, 2), (44100, 2), (48000, 5)])
def test_streaming_meter_matches_pyloudnorm(rng, rate, channels):
    x = (rng.standard_normal((channels, int(2.7 * rate))) * np.linspace(0.01, 0.3, int(2.7 * rate))).astype(np.float32)
    reference = pyloudnorm.Meter(rate).integrated_loudness(x.T.astype(np.float64))
    meter = LoudnessMeter(rate, channels)
    for s in range(0, x.shape[1], 4321):
        meter.update(x[:, s:s + 4321])
    assert meter.integrated() == pytest.approx(reference, abs=1e-6)


def test_true_peak_is_block_invariant_and_catches_inter_sample_peaks():
    rate = 48000
    n = np.arange(4800)
    x = (0.5 * np.sin(2 * np.pi * rate / 4 * n / rate + np.pi / 4))[None].astype(np.float64)  # fs/4 at 45 deg
    whole = true_peak_dbtp(x)
    meter = TruePeakMeter(1)
    for s in range(0, x.shape[1], 333):
        meter.update(x[:, s:s + 333])
    assert meter.dbtp == pytest.approx(whole, abs=1e-9)
    sample_peak_db = 20 * np.log10(np.abs(x).max())
    assert whole > sample_peak_db + 2.5  # the true peak (0.5) is 3 dB above the samples (0.354)


@pytest.mark.parametrize("target", [-23.0, -16.0])
def test_normalisation_reaches_target_within_0_1_lu(target):
    x = speech_like(3.0, 16000)
    y, gain_db, _ = normalize_loudness(x, 16000, target, -1.0)
    check = pyloudnorm.Meter(16000).integrated_loudness(y[0].astype(np.float64))
    assert check == pytest.approx(target, abs=0.1)
    assert true_peak_dbtp(y) <= -1.0 + 1e-6


def test_limiter_keeps_true_peak_under_ceiling_when_gain_needs_it():
    x = tone(997, 2.0, 44100, 2, amplitude=0.05)
    x[:, 40000:40100] *= 18  # a transient far above the programme
    decision = decide_gain(integrated_loudness(x, 44100), true_peak_dbtp(x), -14.0, -1.0)
    assert decision.limit
    y, _, _ = normalize_loudness(x, 44100, -14.0, -1.0)
    assert true_peak_dbtp(y) <= -1.0 + 1e-6
    assert integrated_loudness(y, 44100) == pytest.approx(-14.0, abs=0.1)


def test_silent_and_short_signals_keep_their_level():
    silent = np.zeros((1, 16000), dtype=np.float32)
    assert integrated_loudness(silent, 16000) == -math.inf
    d = decide_gain(-math.inf, -math.inf)
    assert d.gain_db == 0 and "silent" in d.note
    short = tone(440, 0.1, 16000)
    y, gain_db, note = normalize_loudness(short, 16000)
    assert gain_db == 0 and np.array_equal(y, short) and note


def test_stats_for_a_gain_equal_the_stats_of_the_scaled_signal(rng):
    x = rng.standard_normal((2, 44100 * 8)) * np.linspace(0.02, 0.3, 44100 * 8)
    meter, scaled = LoudnessMeter(44100, 2), LoudnessMeter(44100, 2)
    meter.update(x)
    scaled.update(x * 10 ** (-7.5 / 20))
    predicted, measured = meter.stats(-7.5), scaled.stats()
    for key in ("integrated_lufs", "loudness_range_lu", "max_momentary_lufs", "max_short_term_lufs"):
        assert predicted[key] == pytest.approx(measured[key], abs=1e-9), key


def test_fast_true_peak_equals_the_float64_polyphase_reference(rng):
    from archtool.audio.loudness import _OS_HISTORY, _max_abs_oversampled, _phase_outputs
    for n in (13, 14, 100, 40_000):
        x = rng.standard_normal((3, n))
        reference = float(np.abs(_phase_outputs(x, _OS_HISTORY, n)).max())
        assert _max_abs_oversampled(x) == pytest.approx(reference, rel=1e-6)
