"""The invertible CQT (archtool.models.cqt): exact round trip, layout checks, where tones land."""
import math

import pytest
import torch

from archtool.models.cqt import CQT, CQTConfig, round_trip_error_db


@pytest.mark.parametrize("cfg,length", [(CQTConfig(), 8192), (CQTConfig(), 32768),
                                        (CQTConfig(bins_per_octave=24, hop=32), 16384),
                                        (CQTConfig(sample_rate=44100, octaves=8), 16384)])
def test_round_trip_below_minus_60_db(cfg, length):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, length, generator=g) * torch.linspace(0.01, 1.0, length)  # broadband, uneven level
    assert round_trip_error_db(x, CQT(cfg, length)) < -60.0


def test_round_trip_of_music_like_signal_and_batch_shape():
    cqt = CQT(CQTConfig(), 16384)
    t = torch.arange(16384) / 22050
    x = sum(0.3 / k * torch.sin(2 * math.pi * 220.0 * k * t) for k in range(1, 8))
    x = torch.stack([x, 0.5 * x]).reshape(2, 1, 16384)
    c = cqt(x)
    assert c.shape == (2, 1, cqt.config.n_bins, 16384 // 16) and c.is_complex()
    y = cqt.inverse(c)
    assert y.shape == x.shape
    assert float((y - x).square().sum() / x.square().sum()) < 1e-6


def test_tone_lands_in_its_bin_with_its_amplitude():
    cfg = CQTConfig()
    cqt = CQT(cfg, 16384)
    t = torch.arange(16384) / 22050
    f_min = cfg.sample_rate / 2 / 2 ** cfg.octaves
    for k in (20, 50, 80):
        f = f_min * 2 ** (k / cfg.bins_per_octave)
        mag = cqt(0.5 * torch.sin(2 * math.pi * f * t)).abs().mean(-1)
        assert int(mag.argmax()) == k + 1  # row 0 is the low-pass bin
        assert abs(float(mag.max()) - 0.5) < 0.05


def test_inverse_is_differentiable_and_linear():
    cqt = CQT(CQTConfig(), 4096)
    x = torch.randn(4096, requires_grad=True)
    y = cqt.inverse(cqt(x) * 2.0)
    y.square().sum().backward()
    assert torch.allclose(x.grad, 8.0 * x.detach(), atol=1e-3)


def test_layouts_that_are_not_painless_or_misaligned_raise():
    with pytest.raises(ValueError, match="painless"):
        CQT(CQTConfig(bins_per_octave=12, hop=64), 8192)
    with pytest.raises(ValueError, match="multiple"):
        CQT(CQTConfig(), 1000)
