"""Phone-to-studio enhancement (issue 10, seed 004): measured properties of the two-stage
enhancer, its chunk consistency, its training step and the packaged checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from archtool.models.checkpoint import PACKAGED_DIR, load_checkpoint, save_checkpoint
from archtool.models.enhance import EnhanceConfig, PhoneEnhancer, SpectrogramDiscriminator
from archtool.restore.enhance import PhoneEnhance, enhance_phone, segment_grid
from archtool.train import bwe_data as D
from tests.conftest import run_in_engine_blocks, speech_like

SMALL = EnhanceConfig(bwe={"width": 8, "depth": 2, "eq": True}, width=16, blocks=2)


def _ratio_db(a: np.ndarray, ref: np.ndarray) -> float:
    a, ref = a.astype(np.float64), ref.astype(np.float64)
    return float(10 * np.log10(np.sum((a - ref) ** 2) / np.sum(ref ** 2) + 1e-30))


def _phone(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(channels):
        s = D.resample(speech_like(seconds, 16000, seed + c)[0].astype(np.float64), 16000, rate)
        rows.append(D.phone_degrade(s, rate, rng.standard_normal(len(s)), rng))
    return np.stack(rows).astype(np.float32)


@pytest.fixture
def small_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = PhoneEnhancer(SMALL)
    with torch.no_grad():  # a non-identity stage 1, so chunking is really exercised
        model.denoiser.out.weight.normal_(0, 0.05)
    path = tmp_path / "enh_small.pt"
    save_checkpoint(path, model.state_dict(), {"model": "phone_enhancer_v2", "arch": model.config.to_dict()})
    return path


def test_stage1_starts_at_identity_and_gain_is_bounded() -> None:
    torch.manual_seed(0)
    model = PhoneEnhancer(SMALL)
    x = torch.from_numpy(_phone(1.0, 16000, 1))
    y1, logits = model.denoise(x)
    assert _ratio_db(y1.detach().numpy(), x.numpy()) < -60
    g = model.denoiser.gain_db(torch.tensor([-1e9, 0.0, 1e9]))
    assert g[0].item() == pytest.approx(SMALL.floor_db) and g[2].item() == pytest.approx(SMALL.max_db)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (22050, 2)])
def test_output_shape_rate_channels_kept(small_ckpt: Path, rate: int, channels: int) -> None:
    x = _phone(1.0, rate, 2, channels)
    y = enhance_phone(x, rate, model=str(small_ckpt), seed=1)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.array_equal(y, enhance_phone(x, rate, model=str(small_ckpt), seed=1))  # deterministic


def test_file_seeds_of_any_size_work(small_ckpt: Path) -> None:
    """The engine passes 64-bit file seeds (archtool.seeding); the phases must accept them."""
    x = torch.from_numpy(_phone(1.0, 16000, 6))
    a = PhoneEnhance().process(x, 16000, {"model": str(small_ckpt), "seed": 2 ** 64 - 1, "chunk_offset": 0})
    b = PhoneEnhance().process(x, 16000, {"model": str(small_ckpt), "seed": 2 ** 64 - 2, "chunk_offset": 0})
    assert torch.isfinite(a).all() and not torch.equal(a, b)


def test_no_generation_and_no_denoising_returns_the_input(small_ckpt: Path) -> None:
    x = _phone(4.0, 16000, 3)
    y = enhance_phone(x, 16000, gain=0.0, strength=0.0, model=str(small_ckpt))
    assert _ratio_db(y, x) < -60  # segmenting and crossfading alone change nothing


def test_segment_grid_covers_the_chunk() -> None:
    rate = 8000
    length, overlap, starts = segment_grid(5 * rate, rate, offset=3 * rate + 17)
    assert all(a + length > 3 * rate + 17 and a <= 8 * rate + 16 for a in starts)
    assert starts[0] <= 3 * rate + 17 - overlap and starts[-1] + length >= 8 * rate + 17 + overlap


@pytest.mark.parametrize("rate,channels", [(16000, 2), (22050, 1)])
def test_block_size_never_changes_output(small_ckpt: Path, rate: int, channels: int) -> None:
    """Through the engine's chunking (0.25 s and 1 s blocks, each core with the chain's
    context and its file offset) the samples equal the whole-file run's, bit for bit; at
    22.05 kHz the bandwidth extension above 8 kHz runs too."""
    from archtool.restore.base import Step

    x = _phone(2 * PhoneEnhance.context_s + 1.7, rate, 4, channels)
    steps = [Step("enhance", {"model": str(small_ckpt), "gain": 1.0})]

    def run(block_s: float) -> np.ndarray:
        return run_in_engine_blocks(x, rate, steps, block_s, seed=5)

    whole = run(60.0)
    assert _ratio_db(whole, x) > -40  # it did something
    for block_s in (0.25, 1.0):
        assert np.array_equal(run(block_s), whole), f"block {block_s} s differs"


def test_training_steps_reduce_the_loss() -> None:
    from archtool.train.enhance import OutputLoss, adversarial_losses, stage1_loss

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clean = np.stack([speech_like(0.35, 16000, k)[0] for k in range(2)]).astype(np.float64)
    noisy = np.stack([D.phone_degrade(c, 16000, rng.standard_normal(len(c)), rng) for c in clean])
    s, x = torch.from_numpy(clean.astype(np.float32)), torch.from_numpy(noisy.astype(np.float32))
    cut = torch.full((2,), 3400.0)
    model, disc = PhoneEnhancer(SMALL), SpectrogramDiscriminator(channels=4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    out_loss = OutputLoss()
    losses = []
    for _ in range(12):
        parts = model(x, cut, generator=torch.Generator().manual_seed(0), return_parts=True)
        adv, fm = adversarial_losses(disc, parts["y"], s)
        loss = stage1_loss(model, parts["stage1"], s, cut) + out_loss(parts["y"], s)
        opt.zero_grad()
        (loss + 0.05 * adv + 0.1 * fm).backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_train_enhance_writes_a_loadable_resumable_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from archtool.audio.io import write_audio
    from archtool.restore.enhance import load_enhancer
    from archtool.train import enhance as T

    monkeypatch.setattr(T, "EnhanceConfig", lambda **kw: SMALL)
    data = tmp_path / "clean"
    data.mkdir()
    for i in range(2):
        write_audio(data / f"clip{i}.flac", speech_like(1.0, 16000, seed=i), 16000)
    out = tmp_path / "enh.pt"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = T.EnhanceTrainConfig(data_dir=data, out=out, steps=2, batch=2, segment_s=0.3, eval_every=2,
                                   adv_start=1, log=lambda s: None)
        T.train_enhance(cfg)
        state, meta = load_checkpoint(out)  # weights only
        assert meta["steps"] == 2 and meta["model"] == "phone_enhancer_v2"
        assert meta["adversarial"]["start"] == 1 and out.with_suffix(".disc.pt").exists()
        cfg.steps, cfg.resume = 3, True
        T.train_enhance(cfg)
        assert load_checkpoint(out)[1]["steps"] == 3
        assert isinstance(load_enhancer(str(out)), PhoneEnhancer)
    finally:
        torch.set_num_threads(threads)


def test_packaged_checkpoint() -> None:
    path = PACKAGED_DIR / "enhance_phone.pt"
    if not path.exists():
        pytest.skip("enhance_phone.pt not shipped")
    assert path.stat().st_size <= 20 * 1024 * 1024
    state, meta = load_checkpoint(path)  # weights_only=True inside
    assert meta["model"] == "phone_enhancer_v2" and meta["steps"] > 0
    assert meta["data"]["train"] and all(r["licence"] for r in meta["data"]["train"])
    PhoneEnhancer(EnhanceConfig(**meta["arch"])).load_state_dict(state)
