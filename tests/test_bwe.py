"""Bandwidth extension: measured properties (issue 10; phone enhancement: tests/test_enhance.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archtool.models.bwe import BandwidthExtender, BweConfig, effective_cutoff_hz, highpass_fir, highpass_taps
from archtool.models.checkpoint import PACKAGED_DIR, load_checkpoint, save_checkpoint
from archtool.restore.base import Step
from archtool.restore.bwe import BandwidthExtension, extend_bandwidth, load_extender
from archtool.restore.chain import context_samples
from archtool.restore.registry import get_restorer
from archtool.train.bwe import BweTrainConfig, PairSampler, generated_band_losses, tpcm_loss
from archtool.train import bwe_data as D
from archtool.train.bwe_metrics import lsd, snr_db
from tests.conftest import run_in_engine_blocks, speech_like


def _music_like(rate: int, seconds: float, seed: int, channels: int = 2) -> np.ndarray:
    """Harmonic tones with 1/f partials up to Nyquist plus a little noise, ``(C, N)``."""
    g = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    out = []
    for c in range(channels):
        f0 = g.uniform(150, 400)
        x = sum(np.sin(2 * np.pi * k * f0 * t + g.uniform(0, 6.28)) / k for k in range(1, int(rate / 2 / f0)))
        x = x + 0.02 * g.standard_normal(t.size)
        out.append(0.1 * x / np.sqrt(np.mean(x ** 2)))
    return np.stack(out).astype(np.float32)


@pytest.fixture
def random_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = BandwidthExtender(BweConfig(width=16, depth=2))
    path = tmp_path / "bwe_random.pt"
    save_checkpoint(path, model.state_dict(), {"model": "bandwidth_extender", "arch": model.config.to_dict()})
    return path


def _lowpass(x: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(x.astype(np.float64), axis=-1)
    spec[..., np.fft.rfftfreq(x.shape[-1], 1 / rate) >= cutoff] = 0
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1).astype(np.float32)


def test_band_below_cutoff_kept_exactly(random_ckpt: Path) -> None:
    rate, cutoff = 44100, 6000.0
    x = _lowpass(_music_like(rate, 1.0, 1), rate, cutoff)
    y = extend_bandwidth(x, rate, cutoff, gain=1.0, model=str(random_ckpt))
    assert y.shape == x.shape and y.dtype == np.float32
    diff = np.fft.rfft(y.astype(np.float64) - x, axis=-1)
    ref = np.abs(np.fft.rfft(x.astype(np.float64), axis=-1)).max()
    below = np.fft.rfftfreq(x.shape[-1], 1 / rate) < cutoff
    assert np.abs(diff[:, below]).max() < 1e-5 * ref  # float32 rounding only
    above_energy = np.sum(np.abs(np.fft.rfft(y, axis=-1)[:, ~below]) ** 2)
    assert above_energy > 1e-4 * np.sum(np.abs(np.fft.rfft(x, axis=-1)) ** 2)  # something was generated


def test_gain_zero_is_identity_and_gain_scales(random_ckpt: Path) -> None:
    rate = 22050
    x = _lowpass(_music_like(rate, 0.5, 2, channels=1), rate, 5000.0)
    assert np.array_equal(extend_bandwidth(x, rate, 5000.0, gain=0.0, model=str(random_ckpt)), x)
    y1 = extend_bandwidth(x, rate, 5000.0, gain=1.0, model=str(random_ckpt))
    e1 = y1 - x
    e2 = extend_bandwidth(x, rate, 5000.0, gain=0.5, model=str(random_ckpt)) - x
    ratio = np.sqrt(np.sum(e2.astype(np.float64) ** 2) / np.sum(e1.astype(np.float64) ** 2))
    assert abs(ratio - 0.5) < 0.02
    # deterministic: same input and seed give the same bytes
    assert np.array_equal(y1, extend_bandwidth(x, rate, 5000.0, gain=1.0, model=str(random_ckpt)))


def test_restorer_keeps_shape_rate_channels(random_ckpt: Path) -> None:
    rate = 44100
    x = torch.from_numpy(_lowpass(_music_like(rate, 0.4, 3, channels=2), rate, 8000.0))
    out = get_restorer("bwe").process(x, rate, {"cutoff_hz": 8000.0, "model": str(random_ckpt)})
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)


def test_effective_cutoff_detects_lowpass() -> None:
    rate = 44100
    x = _lowpass(_music_like(rate, 1.0, 4, channels=1), rate, 7000.0)
    assert abs(effective_cutoff_hz(x, rate) - 7000.0) < 300.0


def test_highpass_fir_stop_band_and_pass_band(rng: np.random.Generator) -> None:
    rate, cutoff = 16000, 3000.0
    x = rng.standard_normal(8001)
    taps = highpass_taps(rate, cutoff)
    h = highpass_fir(x, rate, cutoff)
    assert h.shape == (x.size + taps.size - 1,)
    freqs = np.fft.rfftfreq(h.size, 1 / rate)
    spec = np.abs(np.fft.rfft(h)) / np.abs(np.fft.rfft(x, n=h.size)).clip(1e-3)  # response x input
    resp = np.abs(np.fft.rfft(taps, n=1 << 16))
    f = np.fft.rfftfreq(1 << 16, 1 / rate)
    assert resp[f < cutoff].max() < 10 ** (-145 / 20)  # stop band: below float32 rounding
    assert np.abs(resp[f > cutoff + 200.0] - 1).max() < 1e-6  # pass band: unity
    assert spec[freqs > cutoff + 300].mean() > 0.99


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rate = 16000
    clips = [D.Clip(f"s{i}", speech_like(1.2, rate, seed=i)[0].astype(np.float64), rate) for i in range(3)]
    cfg = BweTrainConfig(data_dir=Path("."), out=Path("unused.pt"), task="speech", rate=rate, factor=2,
                         batch=2, segment_s=0.4)
    x, s, c, r = PairSampler(cfg, clips, []).batch(np.random.default_rng(0))
    x, s, c = torch.from_numpy(x), torch.from_numpy(s), torch.from_numpy(c)
    model = BandwidthExtender(BweConfig(width=16, depth=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        parts = model(x, r, c, generator=torch.Generator().manual_seed(0), return_parts=True)
        env, bins = generated_band_losses(model, parts, s, r, c)
        loss = env + 0.5 * bins + 0.4 * tpcm_loss(parts["y"] / 0.05, s / 0.05, x / 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.set_num_threads(threads)
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_seed_schemes_band_limit(rng: np.random.Generator) -> None:
    rate = 16000
    x = rng.standard_normal(rate)
    for scheme in D.SCHEMES:
        y = D.bandlimit_pair(x, rate, 8000, scheme, np.random.default_rng(0))
        assert y.shape == x.shape
        spec = np.abs(np.fft.rfft(y)) ** 2
        f = np.fft.rfftfreq(rate, 1 / rate)
        assert spec[f > 4300].sum() < 1e-3 * spec[f < 3000].sum()


def test_random_checkpoint_loads_weights_only(random_ckpt: Path) -> None:
    blob = torch.load(random_ckpt, weights_only=True)
    assert set(blob) == {"state_dict", "meta_json"}
    model = load_extender(str(random_ckpt))
    assert isinstance(model, BandwidthExtender)


PACKAGED = sorted(PACKAGED_DIR.glob("bwe_*.pt"))


@pytest.mark.parametrize("path", PACKAGED, ids=[p.name for p in PACKAGED])
def test_packaged_checkpoints(path: Path) -> None:
    assert path.stat().st_size <= 20 * 1024 * 1024
    state, meta = load_checkpoint(path)  # weights_only=True inside
    assert meta["steps"] > 0 and meta["data"]["train"] and "validation" in meta
    model = BandwidthExtender(BweConfig(**meta["arch"]))
    model.load_state_dict(state)


def test_packaged_music_model_lowers_lsd() -> None:
    if not (PACKAGED_DIR / "bwe_music.pt").exists():
        pytest.skip("bwe_music.pt not shipped")
    rate = 44100
    s = _music_like(rate, 1.5, 5, channels=1)
    x = _lowpass(s, rate, 6000.0)
    y = extend_bandwidth(x, rate, 6000.0, content="music")
    assert lsd(s[0], y[0]) < lsd(s[0], x[0])
    assert snr_db(s[0], y[0]) > snr_db(s[0], x[0]) - 1.0


def test_train_bwe_writes_resumable_checkpoint(tmp_path: Path) -> None:
    from archtool.audio.io import write_audio
    from archtool.train.bwe import train_bwe

    data = tmp_path / "clean"
    data.mkdir()
    for i in range(3):
        write_audio(data / f"clip{i}.flac", speech_like(1.0, 16000, seed=i), 16000)
    out = tmp_path / "bwe_test.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = BweTrainConfig(data_dir=data, out=out, steps=2, batch=2, segment_s=0.3, eval_every=2,
                             model={"width": 8, "depth": 1}, log=lambda s: None)
        train_bwe(cfg)
        _, meta = load_checkpoint(out)
        assert meta["steps"] == 2 and meta["model"] == "bandwidth_extender"
        assert {r["file"] for r in meta["data"]["train"]} == set()  # no MANIFEST beside a tmp folder
        cfg.steps, cfg.resume = 3, True
        train_bwe(cfg)
        state, meta = load_checkpoint(out)
        assert meta["steps"] == 3
        BandwidthExtender(BweConfig(**meta["arch"])).load_state_dict(state)
    finally:
        torch.set_num_threads(threads)


def _engine_run(x: np.ndarray, rate: int, steps: list[Step], block_s: float) -> np.ndarray:
    return run_in_engine_blocks(x, rate, steps, block_s, seed=3)


@pytest.mark.parametrize("rate,cutoff", [(16000, 4000.0), (22050, None)])
def test_block_size_never_changes_output(random_ckpt: Path, rate: int, cutoff: float | None) -> None:
    """The engine's promise: identical samples at 0.25 s, 1 s and whole-file blocks (the
    segments are on the file's grid and each is computed alone, so bit-identity holds)."""
    # longer than the context on both sides of a middle chunk, so chunks really see part of the file
    seconds = 2 * BandwidthExtension.context_s + 1.7
    x = _lowpass(_music_like(rate, seconds, 8, channels=2 if cutoff else 1), rate, 5000.0)
    params = {"gain": 1.0, "model": str(random_ckpt)} | ({} if cutoff is None else {"cutoff_hz": cutoff})
    steps = [Step("bwe", params)]
    assert context_samples(steps, rate) >= int(BandwidthExtension.context_s * rate)
    whole = _engine_run(x, rate, steps, 60.0)
    assert 10 * np.log10(np.sum((whole - x).astype(np.float64) ** 2) / np.sum(x.astype(np.float64) ** 2)) > -40
    for block_s in (0.25, 1.0):
        assert np.array_equal(_engine_run(x, rate, steps, block_s), whole), f"block {block_s} s differs"
