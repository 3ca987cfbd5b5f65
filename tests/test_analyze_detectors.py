"""Each analyze detector on generated audio with a known defect, measured against the truth,
and the full analysis on clean recordings (speech, piano, orchestra, room tone) without
false alarms."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from archtool.analyze import analyze_audio, analyze_file
from archtool.analyze.analyzer import features_of_audio, rule_findings
from archtool.analyze.profile import Profile
from archtool.kinds import KINDS

SR = 16000
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def programme(sr: int = SR, dur: float = 4.0, seed: int = 0) -> np.ndarray:
    """Speech-like test programme: harmonic notes with onsets and pauses, plus short
    broadband 'fricative' bursts so the spectrum reaches Nyquist. Shape (1, n)."""
    rng = np.random.default_rng(seed)
    n = int(sr * dur)
    x = np.zeros(n)
    t0 = 0
    while t0 < n:
        L = int(sr * rng.uniform(0.15, 0.35))
        f0 = rng.uniform(110, 330)
        t = np.arange(L) / sr
        tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.28)) / h
                   for h in range(1, 12) if f0 * h < sr / 2.2)
        env = np.minimum(1, t / 0.01) * np.exp(-t / 0.03)
        seg = tone * env * rng.uniform(0.15, 0.35)
        fric = rng.standard_normal(L) * np.minimum(1, t / 0.005) * np.exp(-t / 0.02) * 0.05
        seg = seg + np.diff(fric, prepend=0.0)
        e = min(n, t0 + L)
        x[t0:e] += seg[: e - t0]
        t0 += L + int(sr * rng.uniform(0.05, 0.2))
    x += 3e-4 * rng.standard_normal(n)  # quiet room tone
    return x[None]


def rules(x: np.ndarray, sr: int = SR):
    return rule_findings(features_of_audio(x.astype(np.float32), sr))


def _power(x):
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def test_noise_snr_estimate_and_psd():
    rng = np.random.default_rng(1)
    x = programme()
    for snr in (10.0, 20.0):
        noise = rng.standard_normal(x.shape)
        noise *= math.sqrt(_power(x) / _power(noise) / 10 ** (snr / 10))
        f = rules(x + noise)["noise"]
        assert f.detected
        assert abs(f.measures["snr_db"] - snr) < 3.0, f.measures["snr_db"]
        psd = np.asarray(f.measures["noise_psd"])
        assert psd.shape == (f.measures["noise_psd_n_fft"] // 2 + 1,)
        # white noise: flat spectrum within a few dB over the band
        mid = 10 * np.log10(psd[10:-10])
        assert np.ptp(mid) < 8.0
    assert not rules(x)["noise"].detected


def test_clicks_positions_and_rate():
    rng = np.random.default_rng(2)
    x = programme(seed=2)
    pos = (np.arange(16) * 0.24 + 0.1 + rng.uniform(0, 0.1, 16)) * SR  # >= 140 ms apart
    pos = pos.astype(int)
    y = x.copy()
    for p in pos:
        y[0, p:p + 3] += rng.choice([-1, 1]) * rng.uniform(0.4, 0.8) * np.array([0.5, 1.0, 0.5])
    f = rules(y)["clicks"]
    assert f.detected
    found = np.asarray(f.measures["positions_s"])
    hits = sum(np.min(np.abs(found - p / SR)) < 0.002 for p in pos)
    assert hits >= 14  # >= 87 % located within 2 ms
    assert abs(f.measures["rate_per_s"] - 16 / 4.0) < 1.5
    assert not rules(x)["clicks"].detected


def test_crackle_dense_small_impulses():
    rng = np.random.default_rng(3)
    x = programme(seed=3)
    y = x.copy()
    idx = rng.choice(x.shape[1], 2000, replace=False)  # 500 per second
    y[0, idx] += rng.uniform(0.03, 0.1, idx.size) * rng.choice([-1, 1], idx.size)
    f = rules(y)["crackle"]
    assert f.detected and f.measures["rate_per_s"] > 10
    assert not rules(x)["crackle"].detected


def _hum(n, sr, f0, level_db, ref_power):
    t = np.arange(n) / sr
    h = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in (1, 2, 3))
    return h * math.sqrt(ref_power / _power(h) * 10 ** (level_db / 10))


def test_hum_mains_and_off_mains_speed_error():
    x = programme(dur=5.0, seed=4)
    f = rules(x + _hum(x.shape[1], SR, 50.0, -20, _power(x)))["hum"]
    assert f.detected
    assert abs(f.measures["fundamental_hz"] - 50.0) < 0.1
    assert not f.measures["off_mains"]
    assert any(abs(h - 100.0) < 0.3 for h in f.measures["harmonics_hz"])
    g = rules(x + _hum(x.shape[1], SR, 61.8, -20, _power(x)))["hum"]  # 60 Hz mains played 3 % fast
    assert g.detected and g.measures["off_mains"]
    assert abs(g.measures["speed_error_percent"] - 3.0) < 0.3
    assert not rules(x)["hum"].detected


def test_rumble_level():
    rng = np.random.default_rng(5)
    x = programme(seed=5)
    r = signal.sosfilt(signal.butter(4, 25, fs=SR, output="sos"), rng.standard_normal(x.shape[1]))
    r *= math.sqrt(_power(x) / _power(r))  # rumble as strong as the programme (0 dB)
    f = rules(x + r)["rumble"]
    assert f.detected and f.measures["level_db"] > -10.0
    assert f.measures["cutoff_hz"] < 80
    assert not rules(x)["rumble"].detected


@pytest.mark.parametrize("cutoff", [2500.0, 4000.0])
def test_bandlimit_cutoff(cutoff):
    sr = 44100
    x = programme(sr=sr, dur=3.0, seed=6)
    y = signal.sosfiltfilt(signal.cheby1(8, 0.05, cutoff, fs=sr, output="sos"), x, axis=1)
    f = rules(y, sr)["bandlimit"]
    assert f.detected
    assert abs(f.measures["cutoff_hz"] - cutoff) / cutoff < 0.15, f.measures["cutoff_hz"]
    assert not rules(x, sr)["bandlimit"].detected


def test_clipping_fraction():
    x = programme(seed=7)
    level = np.quantile(np.abs(x), 1 - 0.02)
    f = rules(np.clip(x, -level, level))["clipping"]
    assert f.detected
    assert abs(f.measures["clipped_fraction"] - 0.02) < 0.006
    assert abs(f.measures["clip_level"] - level) < 1e-4
    assert not rules(x)["clipping"].detected


def test_gap_intervals_across_chunks():
    x = programme(dur=6.0, seed=8)
    truth = [(0.7, 0.76), (2.5, 2.62), (4.99, 5.07)]
    y = x.copy()
    for a, b in truth:
        y[0, int(a * SR):int(b * SR)] = 0.0
    f = rules(y)["gaps"]
    assert f.detected
    got = f.measures["intervals_s"]
    assert len(got) == 3
    for (a, b), (c, d) in zip(truth, got):
        assert abs(a - c) < 1e-3 and abs(b - d) < 1e-3
    # small chunks: the run crossing a chunk boundary is still one interval
    fc = features_of_audio(y.astype(np.float32), SR, chunk_s=0.5)
    assert rule_findings(fc)["gaps"].measures["intervals_s"] == got
    assert not rules(x)["gaps"].detected


def test_reverb_decay():
    rng = np.random.default_rng(9)
    x = programme(dur=5.0, seed=9)
    t = np.arange(int(1.5 * SR)) / SR
    rir = rng.standard_normal(t.size) * np.exp(-6.9 * t / 1.0)  # RT60 = 1.0 s
    rir[0] = 4.0
    y = signal.fftconvolve(x[0], rir)[: x.shape[1]][None]
    y *= 0.5 / np.abs(y).max()
    f = rules(y)["reverb"]
    assert f.detected and 0.5 < f.measures["rt60_s"] < 1.6
    dry = rules(x)["reverb"]
    assert not dry.detected and dry.measures["rt60_s"] < 0.45


def test_surface_noise_rotation():
    rng = np.random.default_rng(10)
    x = programme(dur=5.0, seed=10)
    n = signal.sosfilt(signal.butter(2, [1000, 6000], "band", fs=SR, output="sos"), rng.standard_normal(x.shape[1]))
    t = np.arange(x.shape[1]) / SR
    y = x + 0.05 * n * (0.2 + np.maximum(0, np.sin(2 * np.pi * 78 / 60 * t)) ** 4)
    f = rules(y)["surface_noise"]
    assert f.detected
    assert abs(f.measures["rotation_hz"] - 1.3) < 0.04
    assert not rules(x)["surface_noise"].detected


def test_wow_on_sustained_tone():
    t = np.arange(4 * SR) / SR
    ph = 2 * np.pi * np.cumsum(440 * (1 + 0.005 * np.sin(2 * np.pi * 1.0 * t))) / SR
    tone = 0.2 * sum(np.sin(h * ph) / h for h in range(1, 6))
    f = rules(tone[None])["wow"]
    assert f.detected
    assert abs(f.measures["rate_hz"] - 1.0) < 0.1
    assert abs(f.measures["depth_percent"] - 0.5) < 0.15
    steady = 0.2 * sum(np.sin(2 * np.pi * 440 * h * t) / h for h in range(1, 6))
    assert not rules(steady[None])["wow"].detected


def _notes(sr: int, dur: float, seed: int) -> np.ndarray:
    """A melody of harmonic notes (0.3-0.9 s each, legato) as a sample-time function, so it
    can be read at warped times. Returns ``f(t) -> samples`` for t in seconds."""
    rng = np.random.default_rng(seed)
    edges = np.cumsum(np.concatenate([[0.0], rng.uniform(0.3, 0.9, int(dur / 0.3) + 2)]))
    f0s = 220.0 * 2 ** (rng.integers(0, 12, edges.size) / 12)

    def render(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(edges, t, side="right") - 1
        f0 = f0s[i]
        local = t - edges[i]
        env = np.minimum(1.0, local / 0.02) * (0.6 + 0.4 * np.exp(-local / 0.3))
        return 0.15 * env * sum(np.sin(2 * np.pi * h * f0 * t + h) / h for h in range(1, 7))

    return render


@pytest.mark.parametrize("depth,rate", [(0.004, 0.7), (0.008, 1.6)])
def test_wow_on_a_melody(depth, rate):
    """Wow by time-varying resampling of a melody (note changes every 0.3-0.9 s): the
    detector finds the rate and the depth; the same melody at constant speed is clean."""
    sr = 22050
    t = np.arange(int(6 * sr)) / sr
    render = _notes(sr, 6.5, seed=21)
    warped = render(t + depth / (2 * np.pi * rate) * np.sin(2 * np.pi * rate * t))
    rng = np.random.default_rng(22)
    noise = 1e-3 * rng.standard_normal(t.size)
    f = rules((warped + noise)[None], sr)["wow"]
    assert f.detected, f.measures
    assert abs(f.measures["rate_hz"] - rate) < 0.12, f.measures
    true_cents = 1200 * math.log2(1 + depth)
    assert abs(f.measures["depth_cents"] - true_cents) < 0.35 * true_cents, f.measures
    assert not rules((render(t) + noise)[None], sr)["wow"].detected


def _clicks(n: int, sr: int, rate_hz: float, seed: int) -> np.ndarray:
    """Impulses of 0.2-1.0 amplitude, 0.2-1 ms, at random times (``rate_hz`` on average)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in rng.choice(n - sr // 100, int(rate_hz * n / sr), replace=False):
        w = int(rng.integers(max(2, sr // 5000), max(3, sr // 1000)))
        x[i:i + w] += rng.uniform(0.2, 1.0) * rng.choice([-1, 1]) * np.hanning(w + 2)[1:-1]
    return x


def test_wow_fm_is_coherent_across_partials_despite_clicks():
    """The coherent-FM measure (archtool.analyze.wow_fm) finds a 0.6 %, 1.2 Hz wow on a
    melody peppered with 15 large clicks per second, with its rate and depth; on the same
    melody and clicks at constant speed one sinusoid explains far less of the partials'
    pitch variance. Streamed in 1-s blocks (tracks restart at each block) it finds the same."""
    from archtool.analyze.wow_fm import FMAccumulator

    sr, depth, rate = 22050, 0.006, 1.2
    t = np.arange(int(5 * sr)) / sr
    render = _notes(sr, 5.5, seed=31)
    clicks = _clicks(t.size, sr, 15.0, seed=32)
    noise = 1e-3 * np.random.default_rng(33).standard_normal(t.size)
    warped = render(t + depth / (2 * np.pi * rate) * np.sin(2 * np.pi * rate * t)) + clicks + noise
    steady = render(t) + clicks + noise
    fw = features_of_audio(warped[None].astype(np.float32), sr)
    fs = features_of_audio(steady[None].astype(np.float32), sr)
    mw = rule_findings(fw)["wow"].measures
    ms = rule_findings(fs)["wow"].measures
    assert abs(mw["fm_rate_hz"] - rate) <= 0.1, mw
    true_cents = 1200 * math.log2(1 + depth)
    assert abs(mw["fm_depth_cents"] - true_cents) < 0.35 * true_cents, mw
    assert mw["fm_fraction"] > 0.3 and mw["fm_fraction"] > 3 * ms["fm_fraction"], (mw, ms)
    # streaming: the same mid-rate signal in blocks (tracks restart at block edges)
    mid = signal.resample_poly(warped, 8, 22).astype(np.float32)
    mr = sr * 8 / 22
    one = FMAccumulator(mr)
    one.update(mid)
    blocks = FMAccumulator(mr)
    for i in range(0, mid.size, 8000):
        blocks.update(mid[i:i + 8000])
    a, b = one.summary().measures(), blocks.summary().measures()
    for m in (a, b):
        assert abs(m["rate_hz"] - rate) <= 0.1 + 1e-9 and m["fraction"] > 0.3, (a, b)
        assert abs(m["depth_cents"] - true_cents) < 0.35 * true_cents, (a, b)


def test_brick_wall_6khz_is_reported_by_the_full_analysis():
    """A 6 kHz brick-wall low-pass of 44.1 kHz audio (an exact measurement of the rule
    detector) stays detected after the learned decision layer, with its cutoff."""
    sr = 44100
    rng = np.random.default_rng(23)
    x = programme(sr=sr, dur=4.0, seed=23)[0]
    x = x + 0.02 * np.diff(rng.standard_normal(x.size + 1))  # content up to Nyquist
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / sr) > 6000.0] = 0.0
    y = np.fft.irfft(spec, n=x.size)
    y = np.stack([y, y]).astype(np.float32)
    p = analyze_audio(y, sr)
    f = p.finding("bandlimit")
    assert f.detected, f.measures
    assert abs(f.measures["cutoff_hz"] - 6000.0) < 300.0, f.measures
    assert not analyze_audio(np.stack([x, x]).astype(np.float32), sr).finding("bandlimit").detected


def test_dc_offset_per_channel():
    x = np.repeat(programme(seed=11), 2, axis=0)
    x[1] += 0.02
    f = rules(x)["dc_offset"]
    assert f.detected
    assert abs(f.measures["offset"][0]) < 1e-3 and abs(f.measures["offset"][1] - 0.02) < 1e-3
    assert not rules(np.repeat(programme(seed=11), 2, axis=0))["dc_offset"].detected


def test_loudness_true_peak_match_pyloudnorm():
    import pyloudnorm

    x = programme(seed=12, dur=3.0)
    p = analyze_audio(x.astype(np.float32), SR)
    ref = pyloudnorm.Meter(SR).integrated_loudness(x[0].astype(np.float64))
    assert abs(p.loudness_lufs - ref) < 0.1
    assert p.true_peak_dbtp >= 20 * math.log10(np.abs(x).max()) - 1e-3


def test_profile_json_roundtrip_and_kinds():
    p = analyze_audio(programme(seed=13).astype(np.float32), SR)
    assert [f.kind for f in p.findings] == list(KINDS)
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    q = Profile.from_dict(d)
    assert q.to_dict() == d
    for f in p.findings:
        assert 0.0 <= f.severity <= 1.0 and 0.0 <= f.confidence <= 1.0
        assert (f.severity > 0) == f.detected


def test_file_streaming_matches_in_memory(tmp_path):
    from archtool.audio.io import OutputSpec, write_audio

    x = programme(dur=3.0, seed=14).astype(np.float32)
    x[0, 20000:20400] = 0.0
    path = tmp_path / "prog.wav"
    write_audio(path, x, SR, OutputSpec("wav", 32, float=True))
    a = analyze_file(path)
    b = analyze_audio(x, SR)
    for fa, fb in zip(a.findings, b.findings):
        assert fa.detected == fb.detected, fa.kind
    assert a.finding("gaps").measures["intervals_s"] == b.finding("gaps").measures["intervals_s"]
    assert abs(a.finding("noise").measures["snr_db"] - b.finding("noise").measures["snr_db"]) < 0.5


# ---------------------------------------------------------------- clean real recordings
CLEAN = [
    "speech/vctk_msp_3.flac",              # read speech
    "speech/cmu_arctic_us_axb_a0004.flac",  # read speech, another voice
    "music/pistachio_ragtime_orsa_0.flac",  # piano
    "music/brahms_hungarian5_strings_1.flac",  # string orchestra
]


@pytest.fixture(scope="module")
def shared():
    if not SHARED.exists():
        pytest.skip("../shared/data is not present")
    return SHARED


@pytest.mark.parametrize("rel", CLEAN)
def test_clean_recordings_no_false_alarm(shared, rel):
    p = analyze_file(shared / rel)
    assert [f.kind for f in p.findings if f.detected] == []


def test_room_tone_silence_no_false_alarm():
    rng = np.random.default_rng(15)
    # quiet, slightly pink room tone (-66 dBFS), 3 s, 44.1 kHz stereo
    n = 3 * 44100
    w = rng.standard_normal((2, n))
    pink = signal.lfilter([0.049922, -0.095993, 0.050612, -0.004408], [1, -2.494956, 2.017265, -0.522189], w, axis=1)
    pink *= 10 ** (-66 / 20) / np.sqrt(_power(pink))
    p = analyze_audio(pink.astype(np.float32), 44100)
    assert [f.kind for f in p.findings if f.detected] == []


def test_shipped_detector_checkpoint_matches_the_features():
    """The learned decision layer's checkpoint is small, documents its data and scores, and
    was trained on exactly the features this version computes (else it would be ignored)."""
    from archtool.analyze import learned

    ckpt = learned.CHECKPOINT
    assert ckpt.exists() and ckpt.stat().st_size <= 20 * 1024 * 1024
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    for key in ("trained_on", "validated_on", "training", "thresholds", "validation_f1_chosen"):
        assert key in meta, key
    assert "licence" in meta["trained_on"]["sources"].lower()
    f = features_of_audio(programme(seed=30).astype(np.float32), SR)
    _, names = learned.feature_vector(f, rule_findings(f))
    assert list(meta["feature_names"]) == names
    # validation and training corpora are different degrade runs
    assert not set(meta["validated_on"]["corpora"]) & set(meta["trained_on"]["corpora"])
    # the torch-free mirror holds the same weights as the .pt
    import hashlib

    npz = np.load(ckpt.with_suffix(".npz"))
    assert str(npz["pt_sha256"]) == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    model, _ = learned.load_default()
    vec = np.linspace(-2, 2, len(names)).astype(np.float32)
    import torch

    with torch.no_grad():
        ref = model(torch.from_numpy(vec[None]))[0].numpy()
    assert np.allclose(learned._forward_numpy(learned._numpy_weights(), vec), ref, atol=1e-4)
    # the tree models it combines with are the ones its metadata names, unaltered
    if meta.get("trees"):
        trees_file = ckpt.parent / meta["trees"]["file"]
        assert trees_file.stat().st_size <= 20 * 1024 * 1024
        assert hashlib.sha256(trees_file.read_bytes()).hexdigest() == meta["trees"]["sha256"]
        assert learned._tree_ensembles() is not None
        probs, _ = learned.predict(vec, names)
        assert set(probs) == set(meta["kinds"]) and all(0.0 <= p <= 1.0 for p in probs.values())


# ---------------------------------------------------------------- planner-facing verdicts
def _tones(sr: int, dur: float = 3.0) -> dict[str, np.ndarray]:
    t = np.arange(int(sr * dur)) / sr
    return {
        "sine 440 Hz": 0.3 * np.sin(2 * np.pi * 440.0 * t),
        "220 Hz, 8 partials": sum(0.3 / h * np.sin(2 * np.pi * 220.0 * h * t) for h in range(1, 9)),
        "C major chord, 11 partials": sum(0.1 / h * np.sin(2 * np.pi * f0 * h * t)
                                          for f0 in (261.63, 329.63, 392.0) for h in range(1, 12)),
    }


@pytest.mark.parametrize("name", list(_tones(44100)))
def test_synthetic_tones_are_not_band_limited(name):
    """A tone whose spectrum ends at its highest partial has no band limit: neither the
    detector nor the full analysis reports one, and the auto plan has no bandwidth extension."""
    from archtool.restore.plan import make_plan

    sr = 44100
    x = _tones(sr)[name].astype(np.float32)
    f = rules(x[None], sr)["bandlimit"]
    assert not f.detected and f.measures["cutoff_hz"] == sr / 2, f.measures
    p = analyze_audio(np.stack([x, x]), sr)
    assert not p.finding("bandlimit").detected, p.finding("bandlimit").measures
    assert "bwe" not in [s.restorer for s in make_plan(p, "auto")]


def test_broadband_low_pass_is_still_band_limited():
    """The tonal-spectrum veto leaves a low-passed broadband programme band-limited."""
    sr = 44100
    rng = np.random.default_rng(31)
    x = programme(sr=sr, dur=3.0, seed=31)[0] + 0.02 * np.diff(rng.standard_normal(3 * sr + 1))
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(x.size, 1 / sr) > 4000.0] = 0.0
    f = rules(np.fft.irfft(spec, n=x.size)[None], sr)["bandlimit"]
    assert f.detected and abs(f.measures["cutoff_hz"] - 4000.0) < 300.0, f.measures


REVERB_CLIPS = ["speech/cmu_arctic_us_aew_a0002.flac", "speech/vctk_msp_5.flac", "music/solo_trumpet_sorohan_0.flac"]


@pytest.mark.parametrize("rel", REVERB_CLIPS)
def test_synthetic_room_reverb_is_detected_and_planned(shared, rel):
    """A synthetic room (RT60 0.7 s, DRR 3 dB: degrade's exponential-noise IR) on a 4 s
    excerpt of a real recording: the full analysis reports reverberation with an RT60 of the
    right order, and the auto plan schedules dereverb; the dry excerpt gets neither."""
    from archtool.audio.io import read_audio
    from archtool.degrade.units.reverb import synthetic_rir
    from archtool.restore.plan import make_plan

    x, sr = read_audio(shared / rel)
    x = x[:1, : 4 * sr].astype(np.float64)
    x -= x.mean()
    ir = synthetic_rir(sr, 0.7, 3.0, np.random.default_rng(77))
    y = signal.fftconvolve(x[0], ir)[: x.shape[1]][None].astype(np.float32)
    p = analyze_audio(y, sr)
    f = p.finding("reverb")
    assert f.detected, f.measures
    assert 0.35 <= f.measures["rt60_s"] <= 1.5, f.measures  # sustained notes lengthen decays
    assert "dereverb" in [s.restorer for s in make_plan(p, "auto")]
    dry = analyze_audio(x.astype(np.float32), sr)
    assert not dry.finding("reverb").detected, dry.finding("reverb").measures
    assert "dereverb" not in [s.restorer for s in make_plan(dry, "auto")]
