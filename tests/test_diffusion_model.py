"""CQT-domain score model, EDM loss and the seeded sampler (archtool.models.diffusion)."""
import math

import numpy as np

import pytest
import torch

from archtool.models.cqt import CQTConfig
from archtool.models.diffusion import (CQTDenoiser, EDMConfig, UNetConfig, build_denoiser, count_parameters,
                                       edm_loss, noise_schedule, sample)

TINY = UNetConfig(channels=(8, 16), patch=4, emb=16, cqt=CQTConfig(sample_rate=8000, bins_per_octave=12,
                                                                   octaves=5, hop=16))


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded shared CPU, two threads contend and run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(seed: int = 0) -> CQTDenoiser:
    torch.manual_seed(seed)
    return CQTDenoiser(TINY, EDMConfig(s_churn=2.0))


def tones(n: int, batch: int, rate: int = 8000) -> torch.Tensor:
    t = torch.arange(n) / rate
    f = torch.tensor([220.0, 330.0, 440.0, 587.0])[:batch, None]
    return 0.1 * math.sqrt(2) * torch.sin(2 * math.pi * f * t)


def test_default_model_fits_the_checkpoint_budget():
    m = CQTDenoiser()
    assert 300_000 <= count_parameters(m) <= 2_000_000
    assert count_parameters(m) * 4 < 20 * 1024 * 1024
    rebuilt = build_denoiser(m.arch())
    assert rebuilt.load_state_dict(m.state_dict()) is not None


def test_untrained_denoiser_is_identity_at_low_noise_and_shapes_hold():
    m = tiny()
    x = tones(2048, 2)
    with torch.no_grad():
        y = m(x, 1e-3)
    assert y.shape == x.shape
    assert float((y - x).abs().max()) < 1e-2  # zero-initialised output: c_skip ~ 1


def test_sampler_is_deterministic_for_a_seed():
    m = tiny()
    kw = dict(steps=4, device="cpu")
    a = sample(m, (2, 2048), generator=torch.Generator().manual_seed(7), **kw)
    b = sample(m, (2, 2048), generator=torch.Generator().manual_seed(7), **kw)
    c = sample(m, (2, 2048), generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    y = tones(2048, 2)
    guided = dict(x_init=y, sigma_start=0.05, guidance=lambda x0: (x0 - y).square().sum(-1), xi=0.3, order=2)
    g1 = sample(m, (2, 2048), generator=torch.Generator().manual_seed(3), **kw, **guided)
    g2 = sample(m, (2, 2048), generator=torch.Generator().manual_seed(3), **kw, **guided)
    assert torch.equal(g1, g2)


def test_guidance_pulls_the_sample_towards_the_observation():
    m = tiny()
    y = tones(2048, 2)
    kw = dict(steps=6, x_init=torch.zeros_like(y), sigma_start=0.2, order=1)
    free = sample(m, (2, 2048), generator=torch.Generator().manual_seed(1), **kw)
    pulled = sample(m, (2, 2048), generator=torch.Generator().manual_seed(1), **kw, xi=1.0,
                    guidance=lambda x0: (x0 - y).square().sum(-1))
    assert float((pulled - y).square().mean()) < 0.5 * float((free - y).square().mean())


def test_schedule_is_decreasing_and_ends_at_zero():
    t = noise_schedule(EDMConfig(), 10)
    assert len(t) == 11 and float(t[-1]) == 0.0
    assert torch.all(t[:-1][1:] < t[:-1][:-1])
    assert abs(float(t[0]) - 1.0) < 1e-6 and abs(float(t[-2]) - 1e-4) < 1e-8


def test_a_few_training_steps_reduce_the_loss():
    m = tiny()
    x = tones(2048, 4)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)

    def held_loss() -> float:
        with torch.no_grad():
            return float(edm_loss(m, x, torch.Generator().manual_seed(123)))

    before = held_loss()
    for step in range(40):
        loss = edm_loss(m, x, torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_loss() < 0.7 * before


def test_trainer_writes_a_checkpoint_stops_on_time_and_resumes(tmp_path):
    """`train_diffusion` end to end on tiny generated music: checkpoint + state, time limit, resume."""
    from archtool.audio.io import write_audio
    from archtool.models.checkpoint import load_checkpoint
    from archtool.train.diffusion import DiffusionTrainConfig, train_diffusion

    torch.set_num_threads(1)
    data = tmp_path / "music"
    data.mkdir()
    t = np.arange(22050 * 2) / 22050
    for i in range(3):
        write_audio(data / f"tune_{i}.wav", (0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t))[None].astype(np.float32),
                    22050)
    cfg = DiffusionTrainConfig(data=[str(data)], output=str(tmp_path / "d.pt"), segment=4096, batch=2, steps=50,
                               channels=(8, 16), val_every=25, val_crops=2, holdout_fraction=0.0,
                               time_limit_s=1e-9)
    train_diffusion(cfg, log=lambda m: None)
    _, meta = load_checkpoint(tmp_path / "d.pt")
    assert meta["steps"] == 1 and (tmp_path / "d.pt.state.pt").exists()
    cfg.time_limit_s, cfg.steps = 0.0, 3
    last = train_diffusion(cfg, resume=True, log=lambda m: None)
    state = torch.load(tmp_path / "d.pt.state.pt", weights_only=True)
    assert int(state["step"]) == 3 and np.isfinite(last["val_loss"])
