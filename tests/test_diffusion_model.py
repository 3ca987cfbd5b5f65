"""CQT-domain score model, EDM loss and the seeded sampler (archtool.models.diffusion)."""
import math

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
