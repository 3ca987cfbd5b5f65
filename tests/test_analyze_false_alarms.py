"""False alarms of the full analysis (detectors + learned layer) on signals outside the
training corpora: steady tones and tone steps, a recording whose loudest sample repeats
once, and real historical transfers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archtool.analyze import analyze_audio, analyze_file
from archtool.analyze.analyzer import LINE_SPECTRUM_RESIDUAL_DB, features_of_audio, line_spectrum_residual_db
from archtool.audio.io import OutputSpec, write_audio

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _tone(freq: float, secs: float, sr: int, channels: int, amp: float) -> np.ndarray:
    """A sine with 10 ms fades; channel k detuned by k Hz (as the scale tests write them)."""
    t = np.arange(int(round(secs * sr))) / sr
    x = np.stack([amp * np.sin(2 * np.pi * (freq + k) * t) for k in range(channels)])
    fade = min(t.size // 2, int(0.01 * sr))
    ramp = np.linspace(0, 1, fade)
    x[:, :fade] *= ramp
    x[:, -fade:] *= ramp[::-1]
    return x.astype(np.float32)


def _steps() -> dict[str, tuple[np.ndarray, int]]:
    out = {}
    for i, secs in enumerate((6.0, 1.0, 3.0)):
        # a loud tone stepping to a quieter one at another frequency: the detuned channels
        # beat at 1 Hz, which the envelope shows as slow "decays"
        out[f"tone step {i}"] = (np.concatenate([_tone(200 + 70 * i, secs / 2, 44100, 2, 0.2),
                                                 _tone(300 + 50 * i, secs / 2, 44100, 2, 0.05)], axis=1), 44100)
    out["330 Hz at 8 kHz"] = (_tone(330, 4.0, 8000, 2, 0.3), 8000)
    out["440 Hz mono"] = (_tone(440, 3.0, 44100, 1, 0.3), 44100)
    return out


@pytest.mark.parametrize("name", list(_steps()))
def test_steady_tones_and_tone_steps_have_no_finding(tmp_path, name):
    """Written to 16-bit FLAC and analysed from the file: no finding at all, and the auto
    plan schedules neither dereverberation nor bandwidth extension."""
    from archtool.restore.plan import make_plan

    x, sr = _steps()[name]
    path = tmp_path / "tone.flac"
    write_audio(path, x, sr, OutputSpec("flac", 16))
    p = analyze_file(path)
    assert [f.kind for f in p.findings if f.detected] == [], [(f.kind, f.measures) for f in p.findings if f.detected]
    assert p.finding("reverb").measures.get("line_spectrum_only") is True
    steps = [s.restorer for s in make_plan(p, "auto")]
    assert "dereverb" not in steps and "bwe" not in steps, steps


def test_line_spectrum_residual_separates_tones_from_programmes():
    rng = np.random.default_rng(4)
    x, sr = _steps()["tone step 0"]
    assert line_spectrum_residual_db(features_of_audio(x, sr)) < LINE_SPECTRUM_RESIDUAL_DB - 10
    # the same tone under a -50 dB noise floor is a programme with a floor, not a bare tone
    noisy = x + (10 ** (-50 / 20) * rng.standard_normal(x.shape)).astype(np.float32)
    assert line_spectrum_residual_db(features_of_audio(noisy, sr)) > LINE_SPECTRUM_RESIDUAL_DB


def test_tone_in_noise_is_still_analysed():
    """The tone gate does not hide defects of a programme: a tone step under white noise at
    15 dB SNR is analysed normally and the noise detector measures its SNR."""
    rng = np.random.default_rng(5)
    x, sr = _steps()["tone step 0"]
    noise = rng.standard_normal(x.shape)
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2)) * 10 ** (-15 / 20)
    p = analyze_audio((x + noise).astype(np.float32), sr)
    m = p.finding("noise").measures
    assert "line_spectrum_only" not in m
    assert abs(m.get("snr_db_detector", m["snr_db"]) - 15.0) < 3.0, m


def test_a_single_flat_run_is_not_clipping():
    """A clean programme whose loudest sample repeats once (one flat run of two samples) is
    not clipped; the same programme hard-clipped at 60 % of its peak is."""
    from test_analyze_detectors import programme

    x = programme(seed=8)
    i = int(np.argmax(np.abs(x[0])))
    x[0, i + 1] = x[0, i]
    p = analyze_audio(x.astype(np.float32), 16000)
    c = p.finding("clipping")
    assert not c.detected and c.measures["flat_runs"] <= 1, c.measures
    lim = 0.6 * float(np.max(np.abs(x)))
    q = analyze_audio(np.clip(x, -lim, lim).astype(np.float32), 16000)
    assert q.finding("clipping").detected, q.finding("clipping").measures


@pytest.fixture(scope="module")
def historical():
    d = SHARED / "historical"
    if not d.exists():
        pytest.skip("../shared/data/historical is not present")
    return d


def test_jfk_transfer_is_not_clipped(historical):
    """The 1961 inaugural transfer has one flat run at its peak (2e-6 of the samples): the
    learned layer's clipping verdict needs flat runs or a near-peak pile-up behind it."""
    c = analyze_file(historical / "jfk_inaugural_1961.flac").finding("clipping")
    assert c.measures["flat_runs"] <= 1
    assert not c.detected, c.measures


def test_decisions_do_not_depend_on_the_channel_count():
    """Every feature of the decision layer is of the mono mix (or per-channel extremes): a
    dual-mono file gives exactly the feature vector, and so the findings, of its mono
    version (training music is stereo and speech mono, so a channel count among the
    features made a mono music excerpt read as reverberant)."""
    from test_analyze_detectors import programme

    from archtool.analyze.analyzer import rule_findings
    from archtool.analyze.learned import feature_vector

    x = programme(seed=12).astype(np.float32)
    fm, fs = features_of_audio(x, 16000), features_of_audio(np.repeat(x, 2, axis=0), 16000)
    vm, names = feature_vector(fm, rule_findings(fm))
    vs, _ = feature_vector(fs, rule_findings(fs))
    assert "channels" not in names and np.allclose(vm, vs, atol=1e-5)
    pm, ps = analyze_audio(x, 16000), analyze_audio(np.repeat(x, 2, axis=0), 16000)
    assert [f.detected for f in pm.findings] == [f.detected for f in ps.findings]
