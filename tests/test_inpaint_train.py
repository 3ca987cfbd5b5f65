"""`archtool train inpaint`: extra data folders, their share of patches, --init, determinism."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.unet_inpaint import build_model, known_rms, to_features
from archtool.train.inpaint import (InpaintTrainConfig, PatchSampler, default_spec, evaluate,
                                    train_inpaint, validation_set)

RATE = 16000
ARCH = {"base": 4, "levels": 3, "max_channels": 16, "prefill": "interp"}


def _harmonic(f0: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    return (0.2 * x * env + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def _folder(path, names_f0, manifest=False):
    path.mkdir()
    rows = []
    for i, (name, f0) in enumerate(names_f0):
        sf.write(path / f"{name}.flac", _harmonic(f0, 1.6, i), RATE)
        rows.append({"file": f"{name}.flac", "package": "demo-pkg", "package_version": "1.0",
                     "original_path": f"/usr/share/demo/{name}.ogg", "licence": "CC0-1.0"})
    if manifest:
        with (path / "MANIFEST.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


@pytest.fixture()
def folders(tmp_path):
    main = _folder(tmp_path / "main", [(f"m{i}", 110 + 20 * i) for i in range(5)])
    extra = _folder(tmp_path / "extra", [(f"e{i}", 300 + 35 * i) for i in range(5)], manifest=True)
    return main, extra


def _cfg(tmp_path, main, extra, **kw):
    base = dict(data_dir=main, out=tmp_path / "model.pt", sample_rate=RATE, steps=6, batch=2,
                frames=48, eval_every=3, arch=dict(ARCH), extra_dirs=[extra], extra_share=0.7)
    base.update(kw)
    return InpaintTrainConfig(**base)


def test_sampler_draws_extra_patches_at_the_requested_share():
    spec = default_spec(RATE)
    own = [torch.from_numpy(_harmonic(200, 1.6, 0))]
    extra = [torch.from_numpy(_harmonic(400, 1.6, i)) for i in range(1, 7)]  # six times more audio
    sampler = PatchSampler(own, spec, 48, extra, extra_share=0.25)
    assert sampler.weights[0] == pytest.approx(0.75)
    assert sampler.weights[1:].sum() == pytest.approx(0.25)
    assert PatchSampler(own, spec, 48).weights == pytest.approx([1.0])


def test_extra_folders_train_validate_on_their_own_held_out_files_and_record_sources(tmp_path, folders):
    main, extra = folders
    meta = train_inpaint(_cfg(tmp_path, main, extra), log=lambda s: None)
    # the main folder's held-out file (the benchmark's) is neither trained nor validated on
    assert [d["file"] for d in meta["data"]["held_out"]] == ["m4.flac"]
    assert meta["validation_files"] == ["e4.flac"]
    assert [d["file"] for d in meta["data"]["extra_train"]] == [f"e{i}.flac" for i in range(4)]
    first = meta["data"]["extra_train"][0]
    assert first["licence"] == "CC0-1.0" and first["source"].startswith("debian:demo-pkg 1.0")
    assert meta["train_config"]["extra_dirs"] == [str(extra)]


def test_init_starts_from_the_given_weights_and_training_lowers_the_validation_loss(tmp_path, folders):
    main, extra = folders
    torch.manual_seed(3)
    model = build_model(ARCH)
    init = save_checkpoint(tmp_path / "init.pt", model.state_dict(),
                           {"model": "unet_inpaint", "arch": ARCH, "spec": default_spec(RATE).to_dict()})
    meta = train_inpaint(_cfg(tmp_path, main, extra, init=init, steps=30, eval_every=10, lr=3e-3),
                         log=lambda s: None)
    # step-0 validation is the init model's own score on the same validation batch
    from archtool.train.inpaint import load_mono_clips
    spec = default_spec(RATE)
    mags, masks = validation_set(PatchSampler(load_mono_clips([extra / "e4.flac"], RATE, downmix=True), spec, 48), 0)
    assert meta["validation_untrained"]["val_masked_l1"] == pytest.approx(evaluate(model, mags, masks)["val_masked_l1"])
    assert meta["validation"]["val_masked_l1"] < 0.9 * meta["validation_untrained"]["val_masked_l1"]
    # the saved weights are the trained ones, loadable without pickles
    state, saved = load_checkpoint(tmp_path / "model.pt")
    assert saved["init"] == str(init)
    trained = build_model(ARCH)
    trained.load_state_dict(state)
    feat = to_features(mags, known_rms(mags, masks))
    assert not torch.allclose(trained.predict(feat, masks), model.predict(feat, masks))


def test_init_with_another_layout_is_refused(tmp_path, folders):
    from archtool.errors import UsageError
    main, extra = folders
    init = save_checkpoint(tmp_path / "init.pt", build_model(ARCH).state_dict(),
                           {"model": "unet_inpaint", "arch": ARCH, "spec": default_spec(22050).to_dict()})
    with pytest.raises(UsageError, match="16000 Hz layout"):
        train_inpaint(_cfg(tmp_path, main, extra, init=init), log=lambda s: None)


def test_same_seed_gives_the_same_weights(tmp_path, folders):
    main, extra = folders
    a = train_inpaint(_cfg(tmp_path, main, extra, out=tmp_path / "a.pt", steps=4, eval_every=4), log=lambda s: None)
    b = train_inpaint(_cfg(tmp_path, main, extra, out=tmp_path / "b.pt", steps=4, eval_every=4), log=lambda s: None)
    assert a["validation"] == b["validation"]
    sa, _ = load_checkpoint(tmp_path / "a.pt")
    sb, _ = load_checkpoint(tmp_path / "b.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_extra_folder_overlapping_the_main_one_is_refused(tmp_path, folders):
    from archtool.errors import UsageError
    main, extra = folders
    with pytest.raises(UsageError, match="overlaps"):
        train_inpaint(_cfg(tmp_path, main, tmp_path), log=lambda s: None)  # tmp_path holds main/


def test_cli_init_takes_a_shipped_model_name_and_refuses_an_unknown_one(tmp_path, folders):
    from typer.testing import CliRunner

    from archtool.cli.app import app
    from archtool.models.checkpoint import PACKAGED_DIR
    main, extra = folders
    out = tmp_path / "ft.pt"
    res = CliRunner().invoke(app, ["train", "inpaint", "--data", str(main), "--extra-data", str(extra),
                                   "--init", "speech16k", "--steps", "2", "--batch", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    _, meta = load_checkpoint(out)
    assert meta["init"] == str(PACKAGED_DIR / "inpaint_speech16k.pt")
    assert meta["arch"]["base"] == 8  # the shipped model's architecture, not the default config's
    res = CliRunner().invoke(app, ["train", "inpaint", "--data", str(main), "--init", "speech8k", "-o", str(out)])
    assert res.exit_code != 0 and "speech16k" in str(res.exception)  # main() prints it as an error


def test_loudness_weighted_loss_counts_a_loud_bins_error_more_and_p0_is_plain_l1():
    from archtool.train.inpaint import masked_l1
    ref = torch.ones(1, 1, 1)
    mags = torch.full((1, 4, 6), 0.01)
    mags[0, 0] = 10.0  # one loud bin row
    target = to_features(mags, ref)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0, 1.0]])
    loud_err, quiet_err = target.clone(), target.clone()
    loud_err[0, 0, 2:4] += 0.5
    quiet_err[0, 3, 2:4] += 0.5
    # plain L1: the same error anywhere costs the same (0.5 on 2 of the 8 missing bins)
    assert float(masked_l1(loud_err, target, mask)) == pytest.approx(0.125)
    assert float(masked_l1(quiet_err, target, mask)) == pytest.approx(0.125)
    # weighted: the loud bin's error dominates, the quiet bin's nearly vanishes
    assert float(masked_l1(loud_err, target, mask, 0.5)) > 0.4
    assert float(masked_l1(quiet_err, target, mask, 0.5)) < 0.02
    # errors on known frames never count
    known_err = target.clone()
    known_err[0, 0, 0] += 5.0
    assert float(masked_l1(known_err, target, mask, 0.5)) == 0.0


def test_loss_power_run_chooses_its_step_by_the_weighted_loss_and_records_it(tmp_path, folders):
    main, extra = folders
    meta = train_inpaint(_cfg(tmp_path, main, extra, steps=6, eval_every=3, loss_power=0.5), log=lambda s: None)
    assert "weighted" in meta["loss"] and meta["train_config"]["loss_power"] == 0.5
    hist = meta["history"]
    assert all("val_weighted_l1" in h and "val_masked_l1" in h for h in hist)
    best = min(hist, key=lambda h: h["val_weighted_l1"])
    assert meta["steps"] == best["step"]
