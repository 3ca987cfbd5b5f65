"""Each degradation unit does what its label claims, measured on the output."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from archtool.degrade import apply_unit, list_units
from archtool.degrade.sources import Sources
from archtool.degrade.units.reverb import schroeder_rt60, synthetic_rir
from archtool.kinds import KINDS

SR = 16000
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def music_like(seconds: float = 2.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Harmonic tones with a syllable-like envelope plus a little broadband noise; never exactly zero."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t + k) for k in range(1, 12))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
    return np.repeat(x[None], channels, axis=0).astype(np.float32)


def snr_of(clean: np.ndarray, degraded: np.ndarray) -> float:
    c = clean.astype(np.float64)
    return 10 * np.log10(np.mean(c ** 2) / np.mean((degraded.astype(np.float64) - c) ** 2))


def band_energy(x: np.ndarray, lo_hz: float, hi_hz: float = np.inf) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return float(spec[..., (f > lo_hz) & (f < hi_hz)].sum())


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return music_like()


@pytest.mark.parametrize("unit,params", [
    ("noise", {"snr_db": 7.3, "colour": "white"}),
    ("noise", {"snr_db": 31.0, "colour": "brown"}),
    ("hiss", {"snr_db": 12.5, "tilt_db_per_octave": 2.0, "mod_rate_hz": 2.67, "mod_depth": 0.3}),
    ("background", {"snr_db": 4.0, "source": "synthetic"}),
    ("surface_noise", {"snr_db": 15.0, "source": "synthetic", "scratches": 2}),
    ("hum", {"snr_db": 20.0, "freq_hz": 60.0, "buzz": True}),
    ("rumble", {"snr_db": 10.0, "tone_hz": 25.0}),
    ("crackle", {"snr_db": 22.0, "rate_hz": 800.0}),
])
def test_snr_within_0p1_db(clean, unit, params):
    y, label = apply_unit(unit, clean, SR, params, np.random.default_rng(1))
    assert y.shape == clean.shape and y.dtype == np.float32
    measured = snr_of(clean, y)
    assert abs(measured - params["snr_db"]) < 0.1, (unit, measured)
    assert abs(label["snr_db"] - params["snr_db"]) < 0.1


def test_gain_is_noise_rms_over_signal_rms(clean):
    y, label = apply_unit("noise", clean, SR, {"gain": 0.5}, np.random.default_rng(2))
    assert abs(snr_of(clean, y) - 20 * np.log10(2)) < 0.1


@pytest.mark.skipif(not (DATA / "background").is_dir(), reason="shared/data not present")
def test_background_from_folder_at_snr(clean):
    sources = Sources(background_dir=DATA / "background")
    y, label = apply_unit("background", clean, SR, {"snr_db": 3.0}, np.random.default_rng(3), sources)
    assert label["source"] == "folder" and label["background_file"]
    assert abs(snr_of(clean, y) - 3.0) < 0.1


def test_folder_background_adds_no_dc(clean, tmp_path):
    """A background recording with a DC offset (like shared/data's humpback clip) adds none."""
    from archtool.audio.io import write_audio

    t = np.arange(SR * 2) / SR
    write_audio(tmp_path / "offset.wav", (0.3 + 0.05 * np.sin(2 * np.pi * 97 * t))[None].astype(np.float32), SR)
    y, _ = apply_unit("background", clean, SR, {"snr_db": 0.0}, np.random.default_rng(1),
                      Sources(background_dir=tmp_path))
    added = y.astype(np.float64) - clean
    assert abs(added.mean()) < 1e-3 * np.sqrt(np.mean(added ** 2))


def test_synthetic_surface_noise_labels_its_crackle_and_scratches(clean):
    y, label = apply_unit("surface_noise", clean, SR, {"snr_db": 12.0, "scratches": 2, "rpm": 78.0,
                                                       "source": "synthetic"}, np.random.default_rng(19))
    assert set(label["kinds"]) == {"surface_noise", "crackle", "clicks"}
    times = np.array(label["click_times_s"])
    gaps = times[None, :] - times[:, None]
    assert np.count_nonzero(np.abs(gaps - 60 / 78) < 1.5 / SR) >= 2  # scratches recur once per revolution
    assert label["crackle_snr_db"] > label["snr_db"]  # crackle is a part of the total


@pytest.mark.skipif(not (DATA / "background").is_dir(), reason="shared/data not present")
def test_surface_noise_from_a_folder_at_snr(clean):
    # shared/data/noise_78rpm is empty, so any real recordings stand in for groove noise here
    sources = Sources(noise_dir=DATA / "background")
    y, label = apply_unit("surface_noise", clean, SR, {"snr_db": 9.0}, np.random.default_rng(21), sources)
    assert label["source"] == "folder" and label["noise_file"] and "kinds" not in label
    assert abs(snr_of(clean, y) - 9.0) < 0.1


def test_hum_has_its_fundamental(clean):
    silent = np.zeros_like(clean)
    y, _ = apply_unit("hum", silent, SR, {"freq_hz": 60.0, "drift_hz": 0.0, "level_drift_db": 0.0},
                      np.random.default_rng(0))
    spec = np.abs(np.fft.rfft(y[0]))
    f = np.fft.rfftfreq(y.shape[1], 1 / SR)
    assert abs(f[np.argmax(spec)] - 60.0) < 1.0


@pytest.mark.parametrize("unit,params", [
    ("lowpass", {"cutoff_hz": 3000.0}),
    ("lowpass", {"cutoff_hz": 6500.0, "order": 6}),
    ("downsample", {"factor": 2, "scheme": "cheby"}),
    ("downsample", {"factor": 4, "scheme": "cheby"}),
    ("downsample", {"factor": 2, "scheme": "decimate"}),
    ("downsample", {"factor": 4, "scheme": "decimate"}),
    ("downsample", {"factor": 2, "scheme": "resample"}),
    ("downsample", {"factor": 4, "scheme": "resample"}),
    ("phone", {"high_hz": 3400.0}),
])
def test_energy_above_cutoff_40_db_down(unit, params):
    x = np.random.default_rng(4).standard_normal((2, 2 * SR)).astype(np.float32) * 0.1
    y, label = apply_unit(unit, x, SR, params, np.random.default_rng(5))
    cutoff = label["cutoff_hz"]
    assert cutoff is not None
    below = band_energy(x, 0, cutoff * 0.5)
    above_in, above_out = band_energy(x, cutoff), band_energy(y, cutoff)
    assert 10 * np.log10(above_in / above_out) >= 40.0, (unit, params)
    assert band_energy(y, 0, cutoff * 0.5) > 0.1 * below  # the pass band survives


def test_downsample_mix_reports_its_scheme():
    x = music_like()
    seen = {apply_unit("downsample", x, SR, {"scheme": "mix"}, np.random.default_rng(s))[1]["scheme"]
            for s in range(12)}
    assert seen == {"cheby", "decimate", "resample"}


def test_gaps_zero_exactly_where_labelled(clean):
    y, label = apply_unit("gaps", clean, SR, {"count": 5, "min_ms": 10, "max_ms": 60}, np.random.default_rng(6))
    mask = np.zeros(clean.shape[1], bool)
    for a, b in label["gap_intervals_s"]:
        i0, i1 = round(a * SR), round(b * SR)
        assert i1 > i0
        mask[i0:i1] = True
    assert np.all(y[:, mask] == 0)
    assert np.all(y[:, ~mask] == clean[:, ~mask])
    assert abs(label["gap_fraction"] - mask.mean()) < 1e-12


@pytest.mark.parametrize("fraction,run", [(0.1, 1), (0.4, 8), (0.7, 16)])
def test_fragmentation_zeroes_the_stated_fraction_of_frames(clean, fraction, run):
    y, label = apply_unit("fragment", clean, SR, {"fraction": fraction, "run_frames": run},
                          np.random.default_rng(7))
    runs = label["zeroed_frame_runs"]
    zeroed = sum(b - a for a, b in runs)
    frames = int(np.ceil(clean.shape[1] / label["hop"])) + 1
    assert abs(label["fragment_fraction"] - fraction) < 2 / frames
    assert abs(zeroed / label["fragment_fraction"] - frames) < 2
    mask = np.zeros(clean.shape[1], bool)
    for a, b in label["gap_intervals_s"]:
        mask[round(a * SR):round(b * SR)] = True
    assert np.all(y[:, mask] == 0)
    assert not np.any(np.all(y[:, ~mask] == 0, axis=0))  # every other sample carries signal
    # a frame zeroed in the middle of a long run lies inside the labelled zero intervals
    long_runs = [(a, b) for a, b in runs if b - a >= 5]
    for a, b in long_runs:
        centre = ((a + b) // 2) * label["hop"]
        if centre < clean.shape[1]:
            assert mask[centre]


def test_fragmentation_equals_zeroing_stft_frames():
    from scipy.signal import istft, stft

    x = np.random.default_rng(17).standard_normal((2, 22050)).astype(np.float32)
    y, label = apply_unit("fragment", x, 22050, {"fraction": 0.5, "run_frames": 3}, np.random.default_rng(18))
    length, hop = label["frame_length"], label["hop"]
    _, _, spec = stft(x.astype(np.float64), nperseg=length, noverlap=length - hop, window="hann",
                      boundary="zeros", padded=True)
    for a, b in label["zeroed_frame_runs"]:
        spec[..., a:b] = 0
    _, ref = istft(spec, nperseg=length, noverlap=length - hop, window="hann", boundary=True)
    assert np.max(np.abs(ref[:, :x.shape[1]] - y)) < 1e-5


@pytest.mark.parametrize("mode", ["hard", "soft"])
@pytest.mark.parametrize("fraction", [0.002, 0.03, 0.2])
def test_clipped_fraction_as_stated(clean, mode, fraction):
    y, label = apply_unit("clipping", clean, SR, {"fraction": fraction, "mode": mode}, np.random.default_rng(8))
    thr = label["threshold"]
    assert abs(label["clipped_fraction"] - fraction) < 1e-3
    if mode == "hard":
        measured = np.mean(np.abs(y) >= thr)
        assert np.max(np.abs(y)) <= thr
    else:
        measured = np.mean(np.abs(y) > thr * (1 + 1e-6))
        assert np.max(np.abs(y)) < 1.2 * thr
    assert abs(measured - label["clipped_fraction"]) < 1e-3


@pytest.mark.parametrize("rt60", [0.25, 0.6, 1.2, 2.5])
def test_synthetic_rir_rt60_within_10_percent(rt60):
    ir = synthetic_rir(SR, rt60, 0.0, np.random.default_rng(9))
    assert abs(schroeder_rt60(ir, SR) - rt60) / rt60 < 0.10


def test_hf_damping_shortens_the_high_band_decay():
    from scipy.signal import butter, sosfilt

    ir = synthetic_rir(SR, 1.0, 0.0, np.random.default_rng(22), hf_damping=0.5)
    low = sosfilt(butter(4, 1000, "low", fs=SR, output="sos"), ir)
    high = sosfilt(butter(4, 4000, "high", fs=SR, output="sos"), ir)
    assert abs(schroeder_rt60(low, SR) - 1.0) < 0.1
    assert schroeder_rt60(high, SR) < 0.7


@pytest.mark.parametrize("rt60,drr", [(0.4, 6.0), (1.0, -3.0)])
def test_reverb_output_has_requested_rt60_and_drr(rt60, drr):
    impulse = np.zeros((1, int(1.6 * rt60 * SR)), np.float32)
    impulse[0, 0] = 1.0
    y, label = apply_unit("reverb", impulse, SR, {"rt60_s": rt60, "drr_db": drr, "source": "synthetic"},
                          np.random.default_rng(10))
    assert abs(schroeder_rt60(y[0], SR) - rt60) / rt60 < 0.10
    assert abs(10 * np.log10(y[0, 0] ** 2 / np.sum(y[0, 1:].astype(np.float64) ** 2)) - drr) < 0.1
    assert abs(label["rt60_s"] - rt60) / rt60 < 0.10


@pytest.mark.skipif(not (DATA / "rir").is_dir(), reason="shared/data not present")
def test_reverb_from_folder_keeps_alignment(clean):
    sources = Sources(rir_dir=DATA / "rir")
    impulse = np.zeros((2, SR), np.float32)
    impulse[:, 100] = 0.5
    names = set()
    for seed in range(8):
        y, label = apply_unit("reverb", impulse, SR, {}, np.random.default_rng(seed), sources)
        assert label["source"] == "folder"
        names.add(label["rir_file"])
        # the strongest arrival stays where the input impulse was, at its amplitude
        assert np.all(np.argmax(np.abs(y), axis=1) == 100)
        assert np.allclose(y[:, 100], 0.5, atol=1e-6)
        assert np.max(np.abs(y[:, :100])) < 1e-6
    assert len(names) >= 2


def test_wow_time_map_matches_output():
    n = 3 * SR
    x = np.zeros((1, n), np.float32)
    events = np.arange(2000, n - 2000, 2500)
    x[0, events] = 1.0
    params = {"wow_depth": 0.02, "wow_rate_hz": 1.0, "flutter_depth": 0.003, "flutter_rate_hz": 9.0}
    y, label = apply_unit("wow", x, SR, params, np.random.default_rng(12))
    assert y.shape == x.shape
    tm = label["time_map"]
    out_t = np.arange(len(tm["input_s"])) * tm["step_s"]
    for e in events:
        # output peak near the event, mapped back through the time map, lands on the input event
        window = slice(max(0, e - 800), min(n, e + 800))
        o = window.start + int(np.argmax(y[0, window]))
        back = np.interp(o / SR, out_t, tm["input_s"])
        assert abs(back * SR - e) < 1.0, (e, back * SR)
    moved = [abs(window_peak - e) for e in events
             for window_peak in [max(0, e - 800) + int(np.argmax(y[0, max(0, e - 800):e + 800]))]]
    assert max(moved) > 5  # the wow really moved things


def test_clicks_only_near_labelled_times(clean):
    y, label = apply_unit("clicks", clean, SR, {"rate_hz": 10.0, "width_ms_max": 2.0},
                          np.random.default_rng(13))
    assert label["click_count"] == len(label["click_times_s"]) > 0
    changed = np.flatnonzero(np.any(y != clean, axis=0))
    starts = np.array(label["click_times_s"]) * SR
    dist = changed[:, None] - starts[None, :]
    assert np.all(np.any((dist >= -1) & (dist <= 2e-3 * SR + 1), axis=1))


def test_dc_offset_shifts_the_mean(clean):
    y, _ = apply_unit("dc_offset", clean, SR, {"offset": -0.03}, np.random.default_rng(0))
    assert abs((y.astype(np.float64) - clean).mean() + 0.03) < 1e-6


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_codec_round_trip_is_aligned_and_band_limited(fmt):
    x = music_like(seconds=1.5, channels=2) + np.random.default_rng(14).standard_normal((2, int(1.5 * SR))
                                                                                       ).astype(np.float32) * 0.02
    y, label = apply_unit("codec", x, SR, {"format": fmt, "bitrate_kbps": 24}, np.random.default_rng(15))
    assert y.shape == x.shape
    cutoff = label["cutoff_hz"]  # measured: Opus fills high bands with folded noise, so it may be None
    if fmt == "mp3":
        assert cutoff is not None and cutoff <= label["encoder_cutoff_hz"] * 1.3
    if cutoff is not None:
        assert 10 * np.log10(band_energy(x, cutoff) / band_energy(y, cutoff)) >= 20.0
    corr = np.corrcoef(y[0, 2000:-2000], x[0, 2000:-2000])[0, 1]
    assert corr > 0.9


def test_every_unit_is_deterministic_shape_preserving_and_json_labelled():
    x = music_like(seconds=1.0, channels=2)
    for name, info in list_units().items():
        assert info["kind"] in KINDS
        a, la = apply_unit(name, x, SR, {}, np.random.default_rng(16))
        b, lb = apply_unit(name, x, SR, {}, np.random.default_rng(16))
        assert a.shape == x.shape and np.array_equal(a, b), name
        assert np.isfinite(a).all(), name
        la = {k: v for k, v in la.items() if not k.startswith("_")}
        json.dumps(la, allow_nan=True)
        assert 0.0 <= la["severity"] <= 1.0, name


@pytest.mark.parametrize("n", [1, 40])
def test_tiny_and_silent_inputs_do_not_break_units(n):
    for x in (np.zeros((2, n), np.float32), np.full((2, n), 0.1, np.float32)):
        for name in list_units():
            y, label = apply_unit(name, x, SR, {}, np.random.default_rng(20))
            assert y.shape == x.shape and np.isfinite(y).all(), name


def test_bad_parameter_is_refused():
    with pytest.raises(ValueError, match="snr_db"):
        apply_unit("noise", music_like(), SR, {"snr_db": 500.0}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no parameter"):
        apply_unit("noise", music_like(), SR, {"snr": 5.0}, np.random.default_rng(0))
