"""Restorer ``diffusion`` (archtool.restore.diffusion): shape/rate/length, seeded bytes, the
zero-shot constraints, the shipped checkpoint, and the 78rpm-diffusion preset's plan."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from archtool.analyze.profile import Finding, Profile
from archtool.errors import UsageError
from archtool.models.checkpoint import MAX_CHECKPOINT_BYTES, PACKAGED_DIR, load_checkpoint, save_checkpoint
from archtool.models.cqt import CQTConfig
from archtool.models.diffusion import CQTDenoiser, EDMConfig, UNetConfig, build_denoiser
from archtool.restore.diffusion import DiffusionRestorer, bank_psd, mean_square, noise_psd_for
from archtool.restore.plan import make_plan

RATE = 22050


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def restorer(tmp_path_factory) -> DiffusionRestorer:
    """A small untrained model (the sampling machinery is what is tested here)."""
    torch.manual_seed(0)
    m = CQTDenoiser(UNetConfig(channels=(8, 16), emb=16, cqt=CQTConfig(sample_rate=RATE)), EDMConfig())
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, m.state_dict(), {"model": "cqt_diffusion", "arch": m.arch(), "sample_rate": RATE,
                                           "segment": 8192})
    return DiffusionRestorer(checkpoint=str(path))


def music(n: int, rate: int = RATE, channels: int = 2, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = sum(0.2 / k * np.sin(2 * np.pi * 196.0 * k * t + rng.uniform(0, 6)) for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t)
    return torch.from_numpy(np.stack([x * env * (1 - 0.2 * c) for c in range(channels)]).astype(np.float32))


@pytest.mark.parametrize("rate,channels,n", [(RATE, 2, 20000), (44100, 1, 30001), (16000, 3, 9000)])
def test_keeps_rate_channels_length_and_dtype(restorer, rate, channels, n):
    x = music(n, rate, channels)
    noisy = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y = restorer.process(noisy, rate, {"noise_gain": 0.02, "steps": 3, "seed": 4})
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    assert float(y.square().mean()) > 0.1 * float(x.square().mean())


def test_same_seed_same_bytes_other_seed_differs(restorer):
    x = music(16000) + 0.03 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(2))
    p = {"noise_gain": 0.03, "steps": 3, "chunk_offset": 5000, "start_factor": 1.5, "churn": 2.0}
    a = restorer.process(x, RATE, {**p, "seed": 7})
    b = restorer.process(x.clone(), RATE, {**p, "seed": 7})
    c = restorer.process(x, RATE, {**p, "seed": 8})
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_inpainting_fills_the_gap_and_keeps_the_rest(restorer):
    x = music(16000)
    holed = x.clone()
    holed[:, 8000:8400] = 0.0
    y = restorer.process(holed, RATE, {"intervals_s": [[8000 / RATE, 8400 / RATE]], "steps": 4, "seed": 0,
                                       "denoise": False})
    keep = torch.ones(16000, dtype=torch.bool)
    keep[7990:8410] = False
    assert float((y - holed)[:, keep].abs().max()) < 1e-4  # observed samples are kept
    assert float(y[:, 8000:8400].square().mean()) > 1e-4  # the gap is no longer silent


def test_declipping_keeps_unclipped_samples_and_exceeds_the_clip_level(restorer):
    x = music(16000)
    level = 0.5 * float(x.abs().max())
    clipped = x.clamp(-level, level)
    y = restorer.process(clipped, RATE, {"clip_level": level, "steps": 4, "seed": 0, "denoise": False})
    inside = clipped.abs() < 0.999 * level
    assert float((y - clipped)[inside].abs().max()) < 1e-4
    assert bool(torch.all(y[clipped >= level * 0.999] >= level - 1e-4))
    assert bool(torch.all(y[clipped <= -level * 0.999] <= -level + 1e-4))


def test_bandwidth_extension_keeps_the_band_below_the_cutoff(restorer):
    x = music(16384, channels=1)
    spec = torch.fft.rfft(x)
    f = torch.fft.rfftfreq(16384, 1 / RATE)
    low = torch.fft.irfft(spec * (f <= 2000), n=16384)
    y = restorer.process(low, RATE, {"cutoff_hz": 2000.0, "steps": 4, "seed": 0, "denoise": False})
    ys = torch.fft.rfft(y)
    below = (ys - torch.fft.rfft(low))[:, f < 1500].abs().square().sum()
    assert float(below / torch.fft.rfft(low)[:, f < 1500].abs().square().sum()) < 1e-3
    assert float(ys[:, f > 3000].abs().square().sum()) > 0.0  # something was generated above


def white_psd(level: float, n_fft: int = 1024) -> list[float]:
    """The analysis's noise_psd convention (Hann-frame |rfft|^2) for white noise of mean square ``level``."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return [level * float(np.sum(w ** 2))] * (n_fft // 2 + 1)


@pytest.mark.parametrize("rate,channels,n", [(RATE, 1, 20000), (44100, 2, 30001)])
def test_lsa_prefilter_keeps_shape_and_is_seeded(restorer, rate, channels, n):
    x = music(n, rate, channels)
    noisy = x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    p = {"noise_psd": white_psd(0.03 ** 2), "noise_psd_n_fft": 1024, "prefilter": "lsa", "max_reduction_db": 12.0,
         "steps": 3, "churn": 2.0, "chunk_offset": 777}
    a = restorer.process(noisy, rate, {**p, "seed": 5})
    b = restorer.process(noisy.clone(), rate, {**p, "seed": 5})
    c = restorer.process(noisy, rate, {**p, "seed": 6})
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def _noisy_music_and_lsa_params(seed: int) -> tuple[torch.Tensor, dict]:
    """A music excerpt in white noise (std 0.03) and LSA-prefilter params with that noise's PSD."""
    x = music(16384, channels=1)
    noisy = x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    p = {"noise_psd": white_psd(0.03 ** 2), "noise_psd_n_fft": 1024, "max_reduction_db": 12.0, "steps": 2,
         "seed": 0}
    return noisy, p


def test_lsa_prefilter_is_the_dsp_suppressor_then_the_prior_at_the_residual_level(restorer):
    from archtool.restore.registry import get_restorer

    noisy, p = _noisy_music_and_lsa_params(4)
    dsp = get_restorer("denoise").process(noisy, RATE, p)
    # a vanishing residual level: the prior (untrained here: D(x) = c_skip x) leaves the DSP output
    hyb = restorer.process(noisy, RATE, {**p, "prefilter": "lsa", "residual_scale": 0.01})
    err = float((hyb - dsp).square().mean() / dsp.square().mean())
    assert err < 1e-4
    # the residual level sets the prior's noise level: a larger one shrinks more (c_skip < 1)
    big = restorer.process(noisy, RATE, {**p, "prefilter": "lsa", "residual_scale": 100.0})
    assert float(big.square().mean()) < 0.95 * float(hyb.square().mean())
    with pytest.raises(UsageError):
        restorer.process(noisy, RATE, {**p, "prefilter": "spectral"})


def test_several_samples_are_averaged_and_seeded(restorer):
    x = music(12000, channels=2) + 0.03 * torch.randn(2, 12000, generator=torch.Generator().manual_seed(5))
    p = {"noise_gain": 0.03, "steps": 3, "churn": 5.0, "start_factor": 1.5, "seed": 3}
    one = restorer.process(x, RATE, p)
    assert torch.equal(restorer.process(x, RATE, {**p, "samples": 1}), one)  # the first sample is unchanged
    three = restorer.process(x, RATE, {**p, "samples": 3})
    assert three.shape == x.shape and torch.equal(three, restorer.process(x.clone(), RATE, {**p, "samples": 3}))
    # the mean of three stochastic samples varies less between seeds than one sample does
    three_b = restorer.process(x, RATE, {**p, "samples": 3, "seed": 4})
    one_b = restorer.process(x, RATE, {**p, "seed": 4})
    assert float((three - three_b).square().mean()) < 0.6 * float((one - one_b).square().mean())


def test_no_task_returns_the_input(restorer):
    x = music(5000)
    assert torch.allclose(restorer.process(x, RATE, {"denoise": False, "steps": 2}), x, atol=1e-6)


def test_noise_model_from_analysis_psd_and_from_the_bank():
    n_fft = 2048
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    level = 1e-4  # white noise mean square
    psd = [level * float(np.sum(w ** 2))] * (n_fft // 2 + 1)
    got = noise_psd_for({"noise_psd": psd, "noise_psd_n_fft": n_fft}, np.zeros((1, 10)), 44100, RATE)
    assert abs(mean_square(got) / level - 0.5) < 0.02  # half of a white 44.1 kHz noise is below 11 kHz
    bank = bank_psd(RATE)
    assert abs(mean_square(bank) - 1.0) < 1e-6
    floor = noise_psd_for({"noise_floor_dbfs": -40.0}, np.zeros((1, 10)), RATE, RATE)
    assert abs(mean_square(floor) - 1e-4) < 1e-8


def test_preset_plans_diffusion_for_surface_noise_with_steps():
    noise = Finding("noise", True, 0.6, 0.9, {"snr_db": 12.0, "noise_floor_dbfs": -35.0,
                                              "noise_psd": [1e-3] * 513, "noise_psd_n_fft": 1024})
    surface = Finding("surface_noise", True, 0.7, 0.9, {"rpm": 78.0})
    profile = Profile("x.wav", 10.0, RATE, 1, findings=[noise, surface])
    steps = make_plan(profile, "78rpm-diffusion")
    diff = [s for s in steps if s.restorer == "diffusion"]
    assert len(diff) == 1 and diff[0].params["steps"] == 10
    assert diff[0].params["noise_floor_dbfs"] == -35.0 and len(diff[0].params["noise_psd"]) == 513
    # the DSP suppressor first, at the strength the "78rpm" preset gives its denoise step
    dsp = [s for s in make_plan(profile, "78rpm") if s.restorer == "denoise"]
    assert diff[0].params["prefilter"] == "lsa" and diff[0].params["residual_scale"] > 0
    assert diff[0].params["max_reduction_db"] == dsp[0].params["max_reduction_db"]
    assert "denoise" not in [s.restorer for s in steps]
    assert diff[0].params["blend"] == 0.8


def test_preset_plans_the_noise_step_also_where_the_detector_missed_it():
    # every 78 RPM disc has surface noise: the step runs at the measured level, with the
    # suppressor's reduction of severity 0, where the "78rpm" preset plans none
    noise = Finding("noise", False, 0.0, 0.9, {"snr_db": 15.0, "noise_floor_dbfs": -40.0,
                                               "noise_psd": [1e-4] * 513, "noise_psd_n_fft": 1024})
    profile = Profile("x.wav", 10.0, RATE, 1, findings=[noise, Finding("surface_noise", False, 0.0, 0.6, {})])
    diff = [s for s in make_plan(profile, "78rpm-diffusion") if s.restorer == "diffusion"]
    assert len(diff) == 1 and diff[0].params["max_reduction_db"] == 10.0
    assert diff[0].params["noise_floor_dbfs"] == -40.0 and len(diff[0].params["noise_psd"]) == 513
    assert not [s for s in make_plan(profile, "78rpm") if s.restorer == "denoise"]


SHIPPED = PACKAGED_DIR / "diffusion_music22k.pt"


@pytest.mark.skipif(not SHIPPED.exists(), reason="diffusion checkpoint not shipped")
def test_shipped_checkpoint_loads_weights_only_with_its_metadata():
    assert SHIPPED.stat().st_size <= MAX_CHECKPOINT_BYTES
    state, meta = load_checkpoint(SHIPPED)  # torch.load(weights_only=True)
    assert meta["model"] == "cqt_diffusion" and meta["sample_rate"] == RATE
    model = build_denoiser(meta["arch"])
    model.load_state_dict(state)
    files = meta["data"]["files"]
    assert files and all(f["licence"] != "unknown" for f in files)
    assert json.loads(SHIPPED.with_suffix(".json").read_text())["model"] == "cqt_diffusion"
    x = torch.from_numpy(np.sin(2 * math.pi * 440 * np.arange(32768) / RATE).astype(np.float32))[None] * 0.1
    with torch.no_grad():
        assert torch.isfinite(model(x, 0.01)).all()


def test_blend_zero_returns_the_prefiltered_recording(restorer):
    from archtool.restore.registry import get_restorer

    noisy, p = _noisy_music_and_lsa_params(6)
    dsp = get_restorer("denoise").process(noisy, RATE, p)
    half = restorer.process(noisy, RATE, {**p, "prefilter": "lsa", "residual_scale": 100.0, "blend": 0.5})
    zero = restorer.process(noisy, RATE, {**p, "prefilter": "lsa", "residual_scale": 100.0, "blend": 0.0})
    full = restorer.process(noisy, RATE, {**p, "prefilter": "lsa", "residual_scale": 100.0})
    assert float((zero - dsp).square().mean() / dsp.square().mean()) < 1e-8
    # linear in the weight: half way between the prefiltered recording and the sample
    mid = 0.5 * (dsp + full)
    assert float((half - mid).square().mean() / mid.square().mean()) < 1e-8
    assert float((full - dsp).square().mean() / dsp.square().mean()) > 1e-4


def test_gain_floor_limits_attenuation_and_leaves_the_rest():
    from archtool.restore.diffusion import gain_floor

    ref = music(8192, channels=2) + 0.01 * torch.randn(2, 8192, generator=torch.Generator().manual_seed(7))
    # every bin 40 dB down: raised to exactly the floor (-6 dB), phase kept
    y = gain_floor(0.01 * ref, ref, -6.0)
    assert torch.allclose(y, 10 ** (-6 / 20) * ref, atol=1e-5)
    # nothing below the floor: unchanged
    assert torch.allclose(gain_floor(0.8 * ref, ref, -6.0), 0.8 * ref, atol=1e-5)
