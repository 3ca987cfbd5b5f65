"""Op-GAN: Self-ONN layer, generator/discriminator, overlap-add, checkpoints, training, restorer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.opgan import OpGANDiscriminator, OpGANGenerator, build_generator
from archtool.models.overlap_add import overlap_add
from archtool.models.selfonn import SelfONN1d
from archtool.train.losses import MultiResolutionSTFTLoss, lsd_db, sdr_db, si_sdr_db
from tests.conftest import speech_like


# -- Self-ONN layer ---------------------------------------------------------------------------

@pytest.mark.parametrize("stride,padding,dilation", [(1, 2, 1), (2, 2, 1), (1, 4, 2), (4, 0, 1)])
def test_selfonn_output_shape_matches_conv1d(stride, padding, dilation):
    x = torch.rand(3, 4, 257) * 2 - 1
    layer = SelfONN1d(4, 6, 5, stride=stride, padding=padding, dilation=dilation, q=3)
    ref = torch.nn.Conv1d(4, 6, 5, stride=stride, padding=padding, dilation=dilation)
    assert layer(x).shape == ref(x).shape
    assert layer.weight.shape == (6, 12, 5)


def test_selfonn_q1_equals_conv1d():
    torch.manual_seed(0)
    layer = SelfONN1d(3, 5, 7, stride=2, padding=3, q=1)
    conv = torch.nn.Conv1d(3, 5, 7, stride=2, padding=3)
    conv.load_state_dict(layer.state_dict())
    x = torch.rand(2, 3, 301) * 2 - 1
    assert torch.equal(layer(x), conv(x))


def test_selfonn_is_a_sum_of_convolutions_of_powers():
    torch.manual_seed(1)
    layer = SelfONN1d(2, 3, 5, padding=2, q=3)
    x = torch.rand(2, 2, 64) * 2 - 1
    expected = layer.bias[None, :, None].expand(2, 3, 64).clone()
    for p in range(3):
        w = layer.weight[:, 2 * p:2 * (p + 1)]
        expected = expected + torch.nn.functional.conv1d(x ** (p + 1), w, padding=2)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_selfonn_gradients_reach_every_power():
    layer = SelfONN1d(2, 4, 3, padding=1, q=3)
    x = (torch.rand(2, 2, 50) * 2 - 1).requires_grad_(True)
    layer(x).pow(2).mean().backward()
    for p in range(3):
        assert layer.weight.grad[:, 2 * p:2 * (p + 1)].abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_selfonn_rejects_q0():
    with pytest.raises(ValueError):
        SelfONN1d(1, 1, 3, q=0)


# -- networks ---------------------------------------------------------------------------------

def test_generator_and_discriminator_shapes_and_identity_start():
    gen = OpGANGenerator(width=4, depth=4, q=3)
    disc = OpGANDiscriminator(width=4, q=3)
    x = torch.rand(2, 1, 4096) * 1.8 - 0.9
    y = gen(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # residual generator starts as the identity
    assert disc(x).shape == (2, 1, 4096 // 256)
    with pytest.raises(ValueError):
        gen(torch.zeros(1, 1, 4100))


def test_generator_backward_reaches_all_layers():
    gen = OpGANGenerator(width=4, depth=3, q=2, residual=False)
    x = torch.rand(2, 1, 1024) * 2 - 1
    gen(x).pow(2).mean().backward()
    grads = [p.grad for p in gen.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum() > 0) for g in grads) == len(grads)


# -- losses and metrics -----------------------------------------------------------------------

def test_losses_and_metrics_measure_what_they_claim():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 8000, generator=g)
    noise = torch.randn(2, 8000, generator=g)
    est = s + 0.1 * noise  # 20 dB SNR
    assert torch.allclose(sdr_db(est, s), torch.full((2,), 20.0), atol=0.3)
    assert float(si_sdr_db(3 * s, s).min()) > 60  # scale-invariant
    assert torch.allclose(si_sdr_db(est, s), sdr_db(est, s), atol=0.3)
    assert float(lsd_db(s, s).max()) < 1e-3 and float(lsd_db(est, s).min()) > 0.5
    mr = MultiResolutionSTFTLoss()
    assert float(mr(s, s)) < 1e-4 < float(mr(est, s))


# -- overlap-add ------------------------------------------------------------------------------

@pytest.mark.parametrize("window,overlap", [("hann", 0.5), ("hann", 0.75), ("tukey", 0.25), ("boxcar", 0.0)])
def test_overlap_add_reconstructs_a_linear_model_exactly(window, overlap):
    x = torch.randn(2, 10_007)
    y = overlap_add(lambda s: 0.5 * s, x, 1024, overlap=overlap, batch_size=3, window=window)
    assert y.shape == x.shape
    assert torch.allclose(y, 0.5 * x, atol=1e-5)


def test_overlap_add_short_signal_and_per_segment_normalisation():
    x = torch.randn(1, 300) * 1e-3
    calls = []

    def normalised(seg):
        calls.append(seg.shape)
        peak = seg.abs().amax(-1, keepdim=True).clamp_min(1e-9)
        return (seg / peak) * peak  # a model run at unit peak, scaled back

    y = overlap_add(normalised, x, 2048)
    assert torch.allclose(y, x, atol=1e-9)
    assert all(c[1:] == (1, 2048) for c in calls)


# -- checkpoints ------------------------------------------------------------------------------

def test_checkpoint_round_trip_is_weights_only(tmp_path):
    gen = OpGANGenerator(width=4, depth=3, q=3, residual=False)
    meta = {"model": "opgan", "arch": gen.config, "sample_rate": 16000, "segment": 2048}
    path = save_checkpoint(tmp_path / "g.pt", gen.state_dict(), meta)
    blob = torch.load(path, map_location="cpu", weights_only=True)  # no pickled objects
    assert set(blob) == {"state_dict", "meta_json"}
    state, meta2 = load_checkpoint(path)
    assert meta2 == json.loads(json.dumps(meta)) == json.loads((tmp_path / "g.json").read_text())
    gen2 = build_generator(meta2["arch"])
    gen2.load_state_dict(state)
    x = torch.rand(1, 1, 2048) * 2 - 1
    assert torch.equal(gen(x), gen2(x))


# -- training ---------------------------------------------------------------------------------

def _clean_dir(tmp_path: Path, n: int = 4, rate: int = 8000) -> Path:
    from archtool.audio.io import write_audio

    d = tmp_path / "clean"
    d.mkdir()
    for i in range(n):
        write_audio(d / f"clip_{i}.wav", speech_like(2.0, rate, seed=i), rate)
    return d


def _tiny_cfg(tmp_path: Path, data: Path, **kw):
    from archtool.train.opgan import TrainConfig

    base = dict(data=[str(data)], output=str(tmp_path / "ck" / "opgan.pt"), rate=8000, segment=2048,
                width=4, depth=3, q=2, batch=4, steps=40, val_every=20, val_items=8, w_adv=0.0,
                lr=2e-3, holdout_fraction=0.0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _awgn(clean, rate, rng):
    """White noise at 5 dB SNR: the simplest real degradation (keeps the test fast)."""
    p = float(np.mean(clean ** 2)) + 1e-9
    return (clean + rng.standard_normal(clean.shape) * np.sqrt(p / 10 ** 0.5)).astype(np.float32), {}


def test_training_steps_reduce_the_loss(tmp_path):
    from archtool.train.opgan import OpGANTrainer, evaluate

    torch.set_num_threads(1)
    tr = OpGANTrainer(_tiny_cfg(tmp_path, _clean_dir(tmp_path)), degrader=_awgn, progress=False)
    before = evaluate(tr.gen, tr.val_x, tr.val_y)
    with torch.no_grad():
        l1_before = float((tr.gen(tr.val_x) - tr.val_y).abs().mean())
    tr.run()
    after = evaluate(tr.gen, tr.val_x, tr.val_y)
    with torch.no_grad():
        l1_after = float((tr.gen(tr.val_x) - tr.val_y).abs().mean())
    assert abs(before["sdr_improvement_db"]) < 1e-6  # identity at the start
    assert l1_after < 0.9 * l1_before
    assert after["sdr_improvement_db"] > 0.5
    _, meta = load_checkpoint(tmp_path / "ck" / "opgan.pt")
    assert meta["steps"] in (20, 40) and meta["q"] == 2 and meta["sample_rate"] == 8000
    assert meta["validation"]["sdr_improvement_db"] > 0
    assert {f["split"] for f in meta["data"]["files"]} == {"train"}


def _trained(tmp_path, data, name: str, steps: int, run: bool = True, **kw):
    """A tiny trainer writing ``name``.pt, run to ``steps`` (2-step validation interval)."""
    from archtool.train.opgan import OpGANTrainer

    tr = OpGANTrainer(_tiny_cfg(tmp_path, data, output=str(tmp_path / f"{name}.pt"), steps=steps, val_every=2, **kw),
                      degrader=_awgn, progress=False)
    if run:
        tr.run()
    return tr


def _assert_same_weights(a, b) -> None:
    for (k, va), vb in zip(a.gen.state_dict().items(), b.gen.state_dict().values()):
        assert torch.equal(va, vb), k


def test_training_is_deterministic_and_resumable(tmp_path):
    torch.set_num_threads(1)
    data = _clean_dir(tmp_path)
    a = _trained(tmp_path, data, "a", 4)
    _trained(tmp_path, data, "b", 2)
    b2 = _trained(tmp_path, data, "b", 4, run=False)
    assert b2.load_state() and b2.step == 2
    b2.run()
    _assert_same_weights(a, b2)


def test_prefetch_workers_give_the_same_training(tmp_path):
    """Batches made ahead in worker processes are the serial loop's batches, so the weights match."""
    torch.set_num_threads(1)
    data = _clean_dir(tmp_path)
    _assert_same_weights(_trained(tmp_path, data, "serial", 4), _trained(tmp_path, data, "pooled", 4, workers=2))


def test_init_fine_tunes_a_checkpoint_and_refuses_another_architecture(tmp_path):
    """--init starts from the checkpoint's generator (same output before any step) and trains on."""
    from archtool.errors import UsageError
    from archtool.train.opgan import OpGANTrainer, evaluate

    torch.set_num_threads(1)
    data = _clean_dir(tmp_path)
    base = _trained(tmp_path, data, "base", 6)
    base_state, _ = load_checkpoint(tmp_path / "base.pt")
    tuned = _trained(tmp_path, data, "tuned", 4, run=False, init=str(tmp_path / "base.pt"), seed=9)
    for k, v in base_state.items():
        assert torch.equal(tuned.gen.state_dict()[k], v), k
    start = evaluate(tuned.gen, tuned.val_x, tuned.val_y)["sdr_improvement_db"]
    assert start > 0.3  # not an identity start
    tuned.run()
    state, meta = load_checkpoint(tmp_path / "tuned.pt")
    assert meta["training"]["init"] == str(tmp_path / "base.pt")
    assert any(not torch.equal(state[k], v) for k, v in base_state.items())
    with pytest.raises(UsageError, match="differs"):
        OpGANTrainer(_tiny_cfg(tmp_path, data, output=str(tmp_path / "w.pt"), width=6,
                               init=str(tmp_path / "base.pt")), degrader=_awgn, progress=False)


def test_time_limit_stops_after_saving(tmp_path):
    from archtool.train.opgan import OpGANTrainer

    torch.set_num_threads(1)
    tr = OpGANTrainer(_tiny_cfg(tmp_path, _clean_dir(tmp_path), steps=1000, val_every=500, time_limit_s=1e-9),
                      degrader=_awgn, progress=False)
    tr.run()
    assert tr.step == 1 and tr.state_path.exists()
    _, meta = load_checkpoint(tmp_path / "ck" / "opgan.pt")
    assert meta["steps"] == 1


def test_training_with_the_rar_recipe(tmp_path, shared_data):
    from archtool.train.opgan import OpGANTrainer

    torch.set_num_threads(1)
    cfg = _tiny_cfg(tmp_path, _clean_dir(tmp_path), steps=2, val_every=2, rir_dir=str(shared_data / "rir"),
                    background_dir=str(shared_data / "background"))
    tr = OpGANTrainer(cfg, progress=False)
    tr.run()
    assert tr.val_x.shape == (8, 1, 2048) and float(tr.val_x.abs().max()) <= 0.95 + 1e-6
    assert not torch.equal(tr.val_x, tr.val_y)


def test_cli_trains_a_checkpoint(tmp_path):
    import typer
    from typer.testing import CliRunner

    from archtool.cli import train_opgan

    app = typer.Typer()
    group = typer.Typer()
    train_opgan.register(group)
    app.add_typer(group, name="train")
    data = _clean_dir(tmp_path)
    out = tmp_path / "cli.pt"
    res = CliRunner().invoke(app, ["train", "opgan", "--data", str(data), "-o", str(out), "--rate", "8000",
                                   "--steps", "2", "--batch", "2", "--segment", "2048", "--width", "4",
                                   "--depth", "3", "--q", "2", "--val-every", "2", "--adv-weight", "0"])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(out)
    assert meta["arch"] == {"width": 4, "depth": 3, "q": 2, "residual": True, "max_mult": 4}
    bad = CliRunner().invoke(app, ["train", "opgan", "--data", str(data), "-o", str(out), "--segment",
                                   "2050", "--steps", "1"])
    assert bad.exit_code != 0


# -- restorer ---------------------------------------------------------------------------------

@pytest.fixture
def identity_checkpoint(tmp_path) -> Path:
    gen = OpGANGenerator(width=4, depth=3, q=3, residual=True)  # zero-initialised correction
    meta = {"model": "opgan", "arch": gen.config, "sample_rate": 16000, "segment": 2048}
    return save_checkpoint(tmp_path / "identity.pt", gen.state_dict(), meta)


@pytest.mark.parametrize("rate,channels", [(16000, 1), (44100, 2), (8000, 1)])
def test_restorer_keeps_shape_rate_and_channels(identity_checkpoint, rate, channels):
    from archtool.restore.registry import get_restorer

    r = get_restorer("opgan", checkpoint=str(identity_checkpoint))
    g = torch.Generator().manual_seed(rate)
    n = int(1.3 * rate)
    t = torch.arange(n) / rate
    x = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(channels, n, generator=g)).float()
    if rate > 16000:
        x = x + 0.1 * torch.sin(2 * torch.pi * 15000 * t)  # above the model's band: kept
    y = r.process(x, rate, {"high_band": "keep"}, "cpu")
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()
    # an identity model must give the input back through resampling and overlap-add
    assert float(sdr_db(y, x).min()) > 25
    assert r is get_restorer("opgan", checkpoint=str(identity_checkpoint))  # loaded once per worker


def test_restorer_rejects_a_missing_checkpoint(tmp_path):
    from archtool.errors import ArchtoolError
    from archtool.restore.opgan import OpGANRestorer

    with pytest.raises(ArchtoolError):
        OpGANRestorer(checkpoint=str(tmp_path / "nope.pt")).process(torch.zeros(1, 100), 16000, {}, "cpu")


# -- shipped checkpoints ----------------------------------------------------------------------

@pytest.mark.parametrize("name,rate", [("opgan_speech16k", 16000), ("opgan_music22k", 22050)])
def test_shipped_checkpoint_metadata_and_size(name, rate):
    from archtool.models.checkpoint import MAX_CHECKPOINT_BYTES, PACKAGED_DIR

    path = PACKAGED_DIR / f"{name}.pt"
    assert path.stat().st_size <= MAX_CHECKPOINT_BYTES
    state, meta = load_checkpoint(path)
    assert meta["model"] == "opgan" and meta["sample_rate"] == rate and meta["q"] >= 2
    assert meta["data"]["holdout"] and all(f["licence"] for f in meta["data"]["files"])
    assert meta["validation"]["on"] == "holdout"
    build_generator(meta["arch"]).load_state_dict(state)


def held_out_speech(shared_data: Path) -> np.ndarray:
    """3 s of the LibriSpeech clip the shipped speech model held out, peak 0.5 (float32)."""
    from archtool.train.opgan import load_mono

    _, meta = load_checkpoint(Path(__file__).resolve().parents[1] / "archtool" / "checkpoints" / "opgan_speech16k.pt")
    key = next(k for k in meta["data"]["holdout"] if "librispeech" in k)
    clean = load_mono(shared_data / key, 16000)[0][16000:16000 + 3 * 16000]
    return (0.5 * clean / np.abs(clean).max()).astype(np.float32)


def test_shipped_speech_model_restores_held_out_speech(shared_data):
    """The packaged speech model improves SDR on rar-degraded speech it never trained on."""
    from archtool.degrade import Degrader
    from archtool.restore.registry import get_restorer

    torch.set_num_threads(1)
    clean = held_out_speech(shared_data)
    deg = Degrader("rar", background_dir=shared_data / "background")
    restorer = get_restorer("opgan")
    gains = []
    for seed in range(3):
        noisy, _ = deg(clean[None], 16000, np.random.default_rng(seed))
        out = restorer.process(torch.from_numpy(noisy), 16000, {"model": "speech"}, "cpu")
        ref = torch.from_numpy(clean)[None]
        gains.append(float(sdr_db(out, ref) - sdr_db(torch.from_numpy(noisy), ref)))
    assert np.mean(gains) > 1.0, gains


@pytest.mark.parametrize("material", ["speech", "music"])
def test_blind_presets_plan_one_opgan_step_for_a_blend(material):
    """noise + background + reverb detected -> a single Op-GAN pass with the preset's model;
    the other kinds keep auto's restorers."""
    from archtool.analyze.profile import Finding, Profile
    from archtool.restore.plan import make_plan

    prof = Profile("x.flac", 10.0, 16000, 1, findings=[
        Finding("noise", True, 0.5, 0.9, {"snr_db": 8.0}),
        Finding("background", True, 0.7, 0.8, {}),
        Finding("reverb", True, 0.6, 0.9, {"rt60_s": 0.8}),
        Finding("clicks", True, 0.5, 0.9, {"rate_per_s": 3.0}),
    ])
    steps = make_plan(prof, f"blind-{material}")
    names = [s.restorer for s in steps]
    assert names.count("opgan") == 1 and "denoise" not in names and "dereverb" not in names
    assert names.index("declick") < names.index("opgan")
    assert next(s for s in steps if s.restorer == "opgan").params["model"] == material
    clean = make_plan(Profile("y.flac", 10.0, 16000, 1, findings=[]), f"blind-{material}")
    assert "opgan" not in [s.restorer for s in clean]


def test_shipped_speech_model_beats_dsp_denoise_on_blends(shared_data):
    """On rar blends of held-out speech, the packaged model gains more SDR than the DSP denoiser
    (benchmarks/opgan.py measures +7.8 against +4.0 dB over 104 blends)."""
    from archtool.degrade import Degrader
    from archtool.restore.registry import get_restorer

    torch.set_num_threads(1)
    clean = held_out_speech(shared_data)
    deg = Degrader("rar", background_dir=shared_data / "background", rir_dir=shared_data / "rir")
    ref = torch.from_numpy(clean)[None]
    gains = {"opgan": [], "denoise": []}
    seed = 0
    while len(gains["opgan"]) < 3:
        noisy, labels = deg(clean[None], 16000, np.random.default_rng(seed))
        seed += 1
        if labels["variant"] != "blend":
            continue
        x = torch.from_numpy(noisy)
        for name in gains:
            out = get_restorer(name).process(x, 16000, {"model": "speech"} if name == "opgan" else {}, "cpu")
            gains[name].append(float(sdr_db(out, ref) - sdr_db(x, ref)))
    assert np.mean(gains["opgan"]) > np.mean(gains["denoise"]) + 1.0, gains


# -- fusion stage -----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [dict(), dict(arch="unet-tcn", channels=4, hidden=16)], ids=["cnn", "unet-tcn"])
def test_fusion_starts_as_opgan_and_chunks_exactly(cfg):
    """Zero-initialised head: Op-GAN's output exactly; chunks with context: one pass's output
    (the unet-tcn's temporal stack has a finite context too)."""
    from archtool.models.fusion import FusionConfig, SpectralFusion, fuse_long

    torch.manual_seed(0)
    x = torch.randn(2, 40000) * 0.1
    g, d = 0.5 * x, 0.3 * x + 0.01 * torch.randn(2, 40000)
    net = SpectralFusion(FusionConfig(**cfg)).requires_grad_(False)
    assert float((net(x, g, d) - g).abs().max()) < 1e-5
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2 if p.dim() == 4 and p.shape[-1] == 1 else 0.05)
    whole = net(x, g, d).detach()
    assert float((fuse_long(net, x, g, d, chunk=6000) - whole).abs().max()) < 1e-5
    assert float((whole - g).abs().max()) > 1e-3


def test_transposed_freq_conv_equals_the_transposed_convolution():
    """The decoder's polyphase form gives ConvTranspose2d's output, values and gradients."""
    from archtool.models.fusion import transposed_freq_conv

    torch.manual_seed(1)
    conv = torch.nn.ConvTranspose2d(6, 4, (5, 3), stride=(2, 1), padding=(2, 1))
    h = torch.randn(2, 6, 17, 23, requires_grad=True)
    ref = conv(h)
    got = transposed_freq_conv(conv, h)
    assert got.shape == ref.shape == (2, 4, 33, 23)
    assert float((got - ref).detach().abs().max()) < 1e-5
    g_ref = torch.autograd.grad(ref.square().sum(), [h, conv.weight, conv.bias])
    g_got = torch.autograd.grad(got.square().sum(), [h, conv.weight, conv.bias])
    for a, b in zip(g_ref, g_got):
        assert float((a - b).abs().max()) < 1e-3 * float(a.abs().max())
    with pytest.raises(ValueError, match="kernel"):
        transposed_freq_conv(torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1), h)


def _fusion_cfg(tmp_path, opgan: Path, data: Path, **kw):
    from archtool.train.opgan_fusion import FusionTrainConfig

    base = dict(opgan=str(opgan), data=[str(data)], output=str(tmp_path / "opgan_fusion.pt"),
                items=32, segment=8192, steps=80, batch=8, val_fraction=0.25, val_every=40, seed=1,
                crop_frames=32)
    base.update(kw)
    return FusionTrainConfig(**base)


@pytest.mark.parametrize("arch", [dict(arch="cnn"), dict(arch="unet-tcn", channels=4, hidden=16, segment=16384)],
                         ids=["cnn", "unet-tcn"])
def test_fusion_training_beats_a_poor_opgan_and_restorer_uses_it(tmp_path, identity_checkpoint, arch):
    """Behind an identity 'Op-GAN' (which removes nothing), the fusion learns to take the DSP
    denoiser's estimate where it helps: validation SDR rises well above Op-GAN's 0 dB."""
    from archtool.errors import CheckpointError
    from archtool.restore.opgan import OpGANRestorer, fusion_path
    from archtool.train.opgan_fusion import train_fusion

    torch.set_num_threads(1)
    data = _clean_dir(tmp_path, rate=16000)
    cfg = _fusion_cfg(tmp_path, identity_checkpoint, data, output=str(fusion_path(identity_checkpoint)), **arch)
    metrics = train_fusion(cfg, log=lambda m: None, progress=False)
    assert abs(metrics["opgan_sdr_improvement_db"]) < 0.2
    assert metrics["sdr_improvement_db"] > metrics["opgan_sdr_improvement_db"] + 1.0, metrics
    _, meta = load_checkpoint(fusion_path(identity_checkpoint))
    assert meta["model"] == "opgan-fusion" and meta["opgan_checkpoint"] == identity_checkpoint.name

    # the restorer picks the fusion up from beside the checkpoint, and "fusion": "off" bypasses it
    rng = np.random.default_rng(5)
    clean = speech_like(2.0, 16000, seed=9)
    noisy = torch.from_numpy((clean + 0.05 * rng.standard_normal(clean.shape)).astype(np.float32))
    r = OpGANRestorer(checkpoint=str(identity_checkpoint))
    ref = torch.from_numpy(clean)
    fused = r.process(noisy, 16000, {}, "cpu")
    plain = r.process(noisy, 16000, {"fusion": "off"}, "cpu")
    assert float(sdr_db(fused, ref)) > float(sdr_db(plain, ref)) + 1.0

    # a fusion file trained for other Op-GAN weights is refused with a clear error
    other = OpGANGenerator(width=4, depth=3, q=3, residual=True)
    torch.nn.init.normal_(next(other.parameters()), std=0.01)
    save_checkpoint(identity_checkpoint, other.state_dict(), load_checkpoint(identity_checkpoint)[1])
    with pytest.raises(CheckpointError, match="other Op-GAN weights"):
        OpGANRestorer(checkpoint=str(identity_checkpoint)).process(noisy, 16000, {}, "cpu")


def test_generator_upsampling_at_the_low_rate_equals_upsampling_first():
    """The decoder convolves x2-upsampled features as two interleaved 3-tap convolutions at
    the low rate; it must give what upsampling first and convolving would."""
    from torch.nn import functional as F

    torch.manual_seed(4)
    gen = OpGANGenerator(width=4, depth=4, q=3, residual=True)
    torch.nn.init.normal_(gen.last.weight, std=0.1)
    x = (torch.rand(3, 1, 1024) * 2 - 1) * 0.8
    skips, h = [], x
    for layer in gen.down:
        h = layer(h)
        skips.append(h)
    for layer, skip in zip(gen.up, reversed(skips[:-1])):
        u = F.interpolate(h, scale_factor=2, mode="nearest")
        h = torch.cat([torch.tanh(layer.norm(layer.conv(u))), skip], 1)
    ref = x + gen.last(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), x], 1))
    assert float((gen(x) - ref).abs().max().detach()) < 1e-5


def test_fusion_validates_on_other_clips_and_resumes_from_a_checkpoint(tmp_path, identity_checkpoint):
    """``val_data``: validation items come from those clips only; ``init``: training starts from
    a fusion checkpoint's weights (a zero-learning-rate step keeps its validation score exactly),
    and one of another architecture is refused."""
    from archtool.audio.io import write_audio
    from archtool.errors import UsageError
    from archtool.train.opgan_fusion import train_fusion

    torch.set_num_threads(1)
    data = _clean_dir(tmp_path, rate=16000)
    val = tmp_path / "unseen"
    val.mkdir()
    for i in range(2):
        write_audio(val / f"other_{i}.wav", speech_like(2.0, 16000, seed=50 + i), 16000)
    first = _fusion_cfg(tmp_path, identity_checkpoint, data, val_data=[str(val)], val_items=12, steps=40)
    metrics = train_fusion(first, log=lambda m: None, progress=False)
    _, meta = load_checkpoint(Path(first.output))
    assert meta["validation"]["items"] == 12 and "trained on by neither" in meta["validation"]["on"]
    assert meta["data"]["val_files"] and all(f["file"].startswith("unseen/") for f in meta["data"]["val_files"])

    again = _fusion_cfg(tmp_path, identity_checkpoint, data, val_data=[str(val)], val_items=12, steps=1,
                        lr=0.0, init=first.output, output=str(tmp_path / "again.pt"))
    same = train_fusion(again, log=lambda m: None, progress=False)
    assert abs(same["sdr_improvement_db"] - metrics["sdr_improvement_db"]) < 1e-4

    # --opgan-overlap: recorded in the checkpoint, and the restorer runs Op-GAN at it
    from archtool.restore.opgan import OpGANRestorer, fusion_path

    dense = _fusion_cfg(tmp_path, identity_checkpoint, data, val_data=[str(val)], val_items=12, steps=1,
                        lr=0.0, init=first.output, opgan_overlap=0.5, output=str(fusion_path(identity_checkpoint)))
    train_fusion(dense, log=lambda m: None, progress=False)
    assert load_checkpoint(Path(dense.output))[1]["opgan_overlap"] == 0.5
    assert OpGANRestorer(checkpoint=str(identity_checkpoint)).model().fusion_overlap == 0.5

    other = _fusion_cfg(tmp_path, identity_checkpoint, data, steps=1, arch="unet-tcn", channels=4, hidden=16,
                        segment=16384, init=first.output, output=str(tmp_path / "other.pt"))
    with pytest.raises(UsageError, match="architecture"):
        train_fusion(other, log=lambda m: None, progress=False)


def test_widened_fusion_starts_from_the_narrow_one_and_trains(tmp_path, identity_checkpoint):
    """A narrower unet-tcn temporal stack loads into a wider one with the same output (to float
    rounding), the new units then learn, and the trainer widens an ``init`` checkpoint that way
    (a zero-learning-rate step keeps its validation score)."""
    from archtool.models.fusion import FusionConfig, SpectralFusion, widen_temporal
    from archtool.train.opgan_fusion import train_fusion

    torch.manual_seed(0)
    narrow = SpectralFusion(FusionConfig(arch="unet-tcn", channels=4, hidden=16))
    for p in narrow.parameters():
        p.data.normal_(0, 0.1)  # a zero head would hide any difference
    wide = SpectralFusion(FusionConfig(arch="unet-tcn", channels=4, hidden=24))
    widen_temporal(wide, narrow.state_dict(), 16)
    x, g, d = torch.randn(3, 2, 12000)
    with torch.no_grad():
        ref, got = narrow(x, g, d), wide(x, g, d)
    assert float((got - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    # the new units are live: the loss has a gradient on the weights that read them
    wide(x, g, d).square().mean().backward()
    assert float(wide.net.expand.weight.grad[:, 16:].abs().max()) > 0
    with pytest.raises(ValueError, match="widen"):
        widen_temporal(SpectralFusion(FusionConfig(arch="unet-tcn", channels=4, hidden=8)), narrow.state_dict(), 16)

    torch.set_num_threads(1)
    data = _clean_dir(tmp_path, rate=16000)
    kw = dict(arch="unet-tcn", channels=4, segment=16384, val_every=1)
    first = _fusion_cfg(tmp_path, identity_checkpoint, data, steps=20, hidden=16, **kw)
    metrics = train_fusion(first, log=lambda m: None, progress=False)
    grown = _fusion_cfg(tmp_path, identity_checkpoint, data, steps=1, hidden=24, lr=0.0, init=first.output,
                        output=str(tmp_path / "grown.pt"), **kw)
    logged = []
    same = train_fusion(grown, log=logged.append, progress=False)
    assert any("widened the temporal stack 16 -> 24" in m for m in logged)
    assert abs(same["sdr_improvement_db"] - metrics["sdr_improvement_db"]) < 1e-3


def test_speech_fusion_runs_op_gan_at_the_overlap_it_was_validated_with():
    """The shipped speech fusion names overlap 0.5 in its metadata; it applies only when the
    fusion runs, and an explicit ``overlap`` param still wins."""
    from archtool.restore.opgan import DEFAULT_OVERLAP, OpGANRestorer

    r = OpGANRestorer(checkpoint="speech")
    model = r.model()
    assert model.fusion_overlap == 0.5 and DEFAULT_OVERLAP == 0.25
    x = torch.randn(1, 40000, generator=torch.Generator().manual_seed(3)) * 0.1
    plain = r.process(x, 16000, {"fusion": "off"})
    assert torch.equal(plain, model.restore(x, overlap=0.25))
    assert float((r.process(x, 16000, {"fusion": "off", "overlap": 0.5}) - plain).abs().max()) > 1e-4
    fused = r.process(x, 16000, {})
    forced = r.process(x, 16000, {"overlap": 0.25})
    assert float((fused - forced).abs().max()) > 1e-4


# -- chunk invariance through the engine -------------------------------------------------------

@pytest.mark.parametrize("src,dst", [(44100, 22050), (48000, 22050), (48000, 16000), (22050, 22050)])
def test_grid_pad_puts_a_chunk_on_the_whole_files_resampling_grid(src, dst):
    """A chunk padded by grid_pad and resampled equals the whole file's resampling, away from
    its edges, and starts on a multiple of the grid."""
    import math

    from archtool.restore.resampling import grid_pad, resample

    x = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 3 * src)).astype(np.float32))
    whole = resample(x, src, dst)
    for offset in (0, 1, 12_345, 2 * src + 777):
        before, after = grid_pad(offset, src, dst, grid=96)
        part = resample(torch.nn.functional.pad(x[:, offset:], (before, 0)), src, dst)
        start = (offset - before) * dst // src
        assert (start - after) % 96 == 0 and 0 <= after < 96 and 0 <= before < src // math.gcd(src, dst)
        edge = dst // 50  # the resampling filters' reach at the chunk's edges
        a = part[:, before * dst // src + edge:-edge]
        b = whole[:, start + before * dst // src + edge:start + part.shape[-1] - edge]
        torch.testing.assert_close(a, b, atol=2e-6, rtol=0)


@pytest.mark.parametrize("rate,model", [(44100, "music"), (16000, "speech")])
def test_shipped_opgan_output_does_not_depend_on_the_engines_block_size(rate, model):
    """Segments, fusion frames, resampling phase and the DSP denoiser's frames all sit on the
    file's grid, so the engine's blocks give the whole-file output (to float rounding) when the
    file's noise spectrum is given (a preset may pass the analysis' one; the blind presets let
    the denoiser inside estimate its own per chunk, which leaves about -40 dB of difference).
    Before, the segment grid started at each chunk: 3.7 s blocks differed from one pass by -34 dB."""
    from archtool.dsp.denoise import _estimate_psd, stft_sizes
    from archtool.restore.base import Step
    from tests.conftest import run_in_engine_blocks

    n = 5 * rate
    rng = np.random.default_rng(11)
    clean = speech_like(5.0, rate)[0]
    x = clean[None, :n] + 0.03 * rng.standard_normal((2, n))
    x = x.astype(np.float32)
    n_fft, hop = stft_sizes(rate)
    spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    psd = _estimate_psd((spec.abs() ** 2).numpy().astype(np.float64)).tolist()
    steps = [Step("opgan", {"model": model, "noise_psd": psd, "noise_psd_n_fft": n_fft})]
    whole = run_in_engine_blocks(x, rate, steps, 20.0)
    chunked = run_in_engine_blocks(x, rate, steps, 1.7)
    assert np.abs(chunked - whole).max() < 1e-5
    noisy = 10 * np.log10(np.mean((x[0] - clean[:n]) ** 2))
    left = 10 * np.log10(np.mean((whole[0] - clean[:n]) ** 2))
    assert left < noisy - 3, f"the noise was not reduced ({noisy:.1f} -> {left:.1f} dB)"
    steps_off = [Step("opgan", {"model": model, "fusion": "off", "high_band": "keep"})]
    assert np.array_equal(run_in_engine_blocks(x, rate, steps_off, 1.7), run_in_engine_blocks(x, rate, steps_off, 20.0))
