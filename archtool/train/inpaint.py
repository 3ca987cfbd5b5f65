"""Train the spectrogram inpainting U-Net (:mod:`archtool.models.unet_inpaint`).

Data: every audio file under ``data_dir`` is decoded, each channel taken as a mono
clip, resampled to the model rate at three speeds (0.92, 1, 1.08: a cheap pitch and
tempo augmentation) and turned into magnitude spectrograms once. A training batch
crops ``frames``-long patches at random and hides frames with one of two mask
families, drawn per example:

- *gaps*: one to three contiguous runs of missing frames, lengths log-uniform from
  2 frames to 60 % of the patch (waveform dropouts of a few ms to ~450 ms);
- *fragmentation*: seed 001's protocol, 10-70 % of the frames zeroed at random.

Files whose index in the sorted file list satisfies ``index % holdout_every ==
holdout_every - 1`` are held out (and used by benchmarks/inpaint.py). Extra folders
(``extra_dirs``: more varied clean material) are split the same way and taken as mono
mixes at speed 1 only (memory); with them, ``extra_share`` of the patches come from their
training files, and validation uses *their* held-out files, so the step choice never sees
the benchmark's held-out clips. ``init`` starts from a trained checkpoint's weights.
Every random draw comes from ``rng_for(seed, f"batch{step}")``, so a run resumed
from its state file gives the same weights as an uninterrupted one.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torchaudio

from archtool.audio.io import read_audio
from archtool.errors import UsageError
from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.unet_inpaint import (InpaintUNet, SpecConfig, build_model, from_features, known_rms,
                                          stft, to_features)
from archtool.seeding import rng_for

AUDIO_SUFFIXES = {".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif", ".opus", ".m4a"}
SPEEDS = (0.92, 1.0, 1.08)


def default_spec(sample_rate: int) -> SpecConfig:
    """STFT layout per rate: 16 ms windows / 4 ms hop at 16 kHz (seed 001's), ~23 ms / 5.8 ms above."""
    if sample_rate <= 16000:
        return SpecConfig(sample_rate, 256, 64)
    return SpecConfig(sample_rate, 512, 128)


@dataclass
class InpaintTrainConfig:
    """Settings of one training run (all stored in the checkpoint metadata)."""

    data_dir: Path
    out: Path
    sample_rate: int = 16000
    steps: int = 2000
    seed: int = 0
    batch: int = 4
    lr: float = 2e-3
    frames: int = 0  # 0: 160 frames at the 16 kHz layout, 112 otherwise
    holdout_every: int = 5
    eval_every: int = 100
    resume: bool = False
    extra_dirs: list = field(default_factory=list)
    extra_share: float = 0.7
    init: Path | None = None
    # 0: plain masked L1; p > 0: each missing bin weighted by (its clean magnitude / the
    # patch's known RMS) ** p, so loud bins -- which decide the fill's waveform SNR -- count more
    loss_power: float = 0.0
    arch: dict = field(default_factory=lambda: {"base": 8, "levels": 5, "max_channels": 128, "prefill": "interp"})


def list_audio(data_dir: Path) -> list[Path]:
    """Audio files under ``data_dir`` (recursively), sorted by relative path."""
    if not data_dir.exists():
        raise UsageError(f"{data_dir}: training data folder not found")
    files = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"{data_dir}: no audio files found to train on")
    return files


def split_files(files: list[Path], holdout_every: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out): every ``holdout_every``-th file of the sorted list is held out."""
    if holdout_every < 2 or len(files) < holdout_every:
        return files, []
    held = [f for i, f in enumerate(files) if i % holdout_every == holdout_every - 1]
    return [f for f in files if f not in held], held


def load_mono_clips(files: list[Path], sample_rate: int, speeds: tuple[float, ...] = (1.0,),
                    downmix: bool = False) -> list[torch.Tensor]:
    """Each channel of each file (or its mono mix) as a float32 clip at ``sample_rate``, per speed."""
    clips = []
    for path in files:
        audio, rate = read_audio(path)
        x = torch.from_numpy(audio)
        if downmix:
            x = x.mean(dim=0, keepdim=True)
        for speed in speeds:
            # Playing ``speed`` times faster == resampling from rate*speed to sample_rate.
            src = int(round(rate * speed))
            y = torchaudio.functional.resample(x, src, sample_rate) if src != sample_rate else x
            clips.extend(ch.clone() for ch in y)
    return clips


def gap_mask(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Known-frame mask ``(frames,)`` with 1-3 contiguous missing runs (log-uniform lengths)."""
    mask = np.ones(frames, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        length = int(round(math.exp(rng.uniform(math.log(2), math.log(0.6 * frames)))))
        start = int(rng.integers(0, frames - length + 1))
        mask[start:start + length] = 0.0
    return mask


def fragment_mask(rng: np.random.Generator, frames: int, lo: float = 0.1, hi: float = 0.7) -> np.ndarray:
    """Seed 001's fragmentation: a random ``lo``-``hi`` fraction of frames zeroed (``(frames,)``)."""
    mask = np.ones(frames, dtype=np.float32)
    count = int(round(rng.uniform(lo, hi) * frames))
    mask[rng.choice(frames, size=count, replace=False)] = 0.0
    return mask


class PatchSampler:
    """Random magnitude patches ``(B, bins, frames)`` and masks ``(B, frames)`` from clips."""

    def __init__(self, clips: list[torch.Tensor], spec: SpecConfig, frames: int,
                 extra_clips: list[torch.Tensor] | None = None, extra_share: float = 0.0):
        self.spec, self.frames = spec, frames
        groups = []
        for group in (clips, extra_clips or []):
            mags = [m for m in (stft(c, spec).abs()[: spec.bins] for c in group) if m.shape[-1] >= frames]
            groups.append(mags)
        if not groups[0] and not groups[1]:
            raise UsageError(f"no training clip is long enough for {frames} frames")
        self.mags = groups[0] + groups[1]
        # within a group, clips are drawn by length; the groups by extra_share
        share = (extra_share if groups[0] else 1.0) if groups[1] else 0.0
        weights = []
        for mags, total in ((groups[0], 1.0 - share), (groups[1], share)):
            w = np.array([m.shape[-1] - frames + 1 for m in mags], dtype=np.float64)
            weights.append(w / w.sum() * total if len(w) else w)
        self.weights = np.concatenate(weights)
        self.weights /= self.weights.sum()

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        mags, masks = [], []
        for _ in range(size):
            mag = self.mags[int(rng.choice(len(self.mags), p=self.weights))]
            start = int(rng.integers(0, mag.shape[-1] - self.frames + 1))
            patch = mag[:, start:start + self.frames]
            if float(patch.square().mean()) < 1e-10:  # digital silence teaches nothing
                patch = patch + 1e-5
            mags.append(patch)
            masks.append(gap_mask(rng, self.frames) if rng.random() < 0.6 else fragment_mask(rng, self.frames))
        return torch.stack(mags), torch.from_numpy(np.stack(masks))


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
              loudness_power: float = 0.0) -> torch.Tensor:
    """Mean absolute error over missing frames only (``(B, F, T)`` features, mask ``(B, T)``).

    ``loudness_power`` p > 0 weighs each bin by its target magnitude relative to the
    patch's known RMS (recovered from the features), to the power p, clamped to
    [1e-3, 1e3]: the log-domain error of a loud bin then counts more than a quiet one's.
    """
    w = (1.0 - mask)[:, None, :].expand_as(target)
    if loudness_power > 0:
        rel = from_features(target.detach(), torch.ones(1, 1, 1, dtype=target.dtype))
        w = w * rel.clamp_min(1e-12).pow(loudness_power).clamp(1e-3, 1e3)
    return ((pred - target).abs() * w).sum() / w.sum().clamp_min(1e-12)


def validation_set(sampler: PatchSampler, seed: int, count: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed validation batch: half gap masks, half fragmentation masks."""
    rng = rng_for(seed, "validation")
    mags, masks = sampler.batch(rng, count)
    half = count // 2
    masks[:half] = torch.from_numpy(np.stack([gap_mask(rng, sampler.frames) for _ in range(half)]))
    masks[half:] = torch.from_numpy(np.stack([fragment_mask(rng, sampler.frames) for _ in range(count - half)]))
    return mags, masks


@torch.no_grad()
def evaluate(model: InpaintUNet, mags: torch.Tensor, masks: torch.Tensor,
             loudness_power: float = 0.0) -> dict[str, float]:
    """Masked L1 of features over the validation batch (``val_masked_l1``) and, with
    ``loudness_power`` > 0, the loudness-weighted one the run trains on (``val_weighted_l1``)."""
    model.eval()
    ref = known_rms(mags, masks)
    feat = to_features(mags, ref)
    losses, weighted = [], []
    for i in range(0, len(mags), 8):
        pred = model.predict(feat[i:i + 8], masks[i:i + 8])
        losses.append(float(masked_l1(pred, feat[i:i + 8], masks[i:i + 8])) * len(pred))
        if loudness_power > 0:
            weighted.append(float(masked_l1(pred, feat[i:i + 8], masks[i:i + 8], loudness_power)) * len(pred))
    model.train()
    out = {"val_masked_l1": sum(losses) / len(mags)}
    if loudness_power > 0:
        out["val_weighted_l1"] = sum(weighted) / len(mags)
    return out


def _sources(files: list[Path], data_dir: Path) -> list[dict[str, str]]:
    """Source and licence of each file from a MANIFEST.csv beside or above ``data_dir``."""
    manifest = None
    for parent in [data_dir, *data_dir.parents][:3]:
        if (parent / "MANIFEST.csv").exists():
            manifest = parent / "MANIFEST.csv"
            break
    rows: dict[str, dict[str, str]] = {}
    if manifest is not None:
        with manifest.open(newline="") as fh:
            for row in csv.DictReader(fh):
                rows[(manifest.parent / row["file"]).resolve().as_posix()] = row
    out = []
    for f in files:
        row = rows.get(f.resolve().as_posix(), {})
        source = row.get("source") or (
            f"debian:{row['package']} {row.get('package_version', '')}: {row.get('original_path', '')}".strip()
            if row.get("package") else "unknown")
        out.append({"file": f.name, "source": source, "licence": row.get("licence", "unknown")})
    return out


def _extra_sources(files: list[Path], dirs: list) -> list[dict[str, str]]:
    """Per-file source and licence of extra-folder files (each folder's own MANIFEST.csv)."""
    out = []
    for d in dirs:
        mine = [f for f in files if Path(d) in f.parents]
        out += [{**row, "folder": Path(d).name} for row in _sources(mine, Path(d))]
    return out


def train_inpaint(cfg: InpaintTrainConfig, log: Callable[[str], None] = print) -> dict:
    """Run training; writes ``cfg.out`` (best validation weights) and ``cfg.out`` + ``.state.pt``.

    Returns the final metadata dict.
    """
    torch.manual_seed(cfg.seed)
    spec = default_spec(cfg.sample_rate)
    frames = cfg.frames or (160 if spec.n_fft == 256 else 112)
    if frames % 16:
        raise UsageError(f"--frames {frames}: must be a multiple of 16")
    files = list_audio(Path(cfg.data_dir))
    train_files, held = split_files(files, cfg.holdout_every)
    log(f"training on {len(train_files)} files, holding out {len(held)}: {[f.name for f in held]}")
    extra_train, extra_held = [], []
    for d in cfg.extra_dirs:
        t, h = split_files(list_audio(Path(d)), cfg.holdout_every)
        extra_train += t
        extra_held += h
    overlap = {f.resolve() for f in files} & {f.resolve() for f in extra_train + extra_held}
    if overlap:
        raise UsageError(f"--extra-data overlaps --data {cfg.data_dir} ({len(overlap)} files, e.g. "
                         f"{sorted(overlap)[0].name}): its held-out files would be trained on")
    if cfg.extra_dirs:
        log(f"extra folders: {len(extra_train)} training files, {len(extra_held)} held out for validation")
    train_sampler = PatchSampler(load_mono_clips(train_files, cfg.sample_rate, SPEEDS), spec, frames,
                                 load_mono_clips(extra_train, cfg.sample_rate, downmix=True), cfg.extra_share)
    val_files = extra_held or held or train_files
    val_sampler = PatchSampler(load_mono_clips(val_files, cfg.sample_rate, downmix=bool(extra_held)), spec, frames)
    val_mags, val_masks = validation_set(val_sampler, cfg.seed)

    arch = cfg.arch
    init_state = None
    if cfg.init is not None:
        init_state, init_meta = load_checkpoint(cfg.init)
        if init_meta.get("model") != "unet_inpaint" or init_meta.get("spec") != spec.to_dict():
            raise UsageError(f"{cfg.init}: not an inpainting U-Net for the {spec.sample_rate} Hz layout")
        arch = init_meta["arch"]
        log(f"starting from {cfg.init} (step {init_meta.get('steps')})")
    model = build_model(arch)
    if init_state is not None:
        model.load_state_dict(init_state)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    out = Path(cfg.out)
    state_path = out.with_name(out.name + ".state.pt")
    step, best, history = 0, math.inf, []
    if cfg.resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, best = int(state["step"]), float(state["best"])
        history = json.loads(state["history"])
        log(f"resumed at step {step} (best val {best:.4f})")
    elif cfg.resume:
        log(f"no state file {state_path}; starting fresh")

    meta_base = {
        "model": "unet_inpaint", "arch": model.arch, "spec": spec.to_dict(), "frames": frames,
        "sample_rate": spec.sample_rate,
        "train_config": {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "extra_dirs" else v)
                         for k, v in asdict(cfg).items()},
        "data": {"train": _sources(train_files, Path(cfg.data_dir)),
                 "held_out": _sources(held, Path(cfg.data_dir)),
                 **({"extra_train": _extra_sources(extra_train, cfg.extra_dirs),
                     "extra_validation": _extra_sources(extra_held, cfg.extra_dirs),
                     "extra_share": cfg.extra_share} if cfg.extra_dirs else {})},
        "validation_files": [f.name for f in val_files],
        "init": str(cfg.init) if cfg.init else None,
        "masks": "60% 1-3 contiguous gaps (2 frames .. 60% of patch, log-uniform), "
                 "40% seed-001 fragmentation (10-70% of frames)",
        "loss": "L1 on normalised log-magnitude over missing frames"
                + (f", each bin weighted by (clean magnitude / patch RMS) ** {cfg.loss_power}; the best step "
                   "by the same weighted L1 on the validation batch" if cfg.loss_power > 0 else ""),
    }
    power = cfg.loss_power
    objective = "val_weighted_l1" if power > 0 else "val_masked_l1"
    baseline = evaluate(model, val_mags, val_masks, power) if step == 0 else None
    t0 = time.time()
    sched_total = max(cfg.steps, 1)
    while step < cfg.steps:
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step / sched_total, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        mags, masks = train_sampler.batch(rng_for(cfg.seed, f"batch{step}"), cfg.batch)
        ref = known_rms(mags, masks)
        feat = to_features(mags, ref)
        pred = model.predict(feat, masks)
        loss = masked_l1(pred, feat, masks, power)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} loss {loss.item():.4f} lr {lr:.2e} {(time.time() - t0) / 50:.2f}s/step")
            t0 = time.time()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate(model, val_mags, val_masks, power)
            history.append({"step": step, **metrics})
            log(f"step {step} validation {metrics}")
            if metrics[objective] < best:
                best = metrics[objective]
                meta = {**meta_base, "steps": step, "validation": metrics,
                        "validation_untrained": baseline, "history": history}
                save_checkpoint(out, model.state_dict(), meta)
                log(f"saved {out} (val {best:.4f})")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                        "best": best, "history": json.dumps(history)}, state_path)
    _, meta = load_checkpoint(out) if out.exists() else ({}, meta_base)
    return meta


def package_checkpoint(src: Path, dst: Path, extra: dict) -> Path:
    """Copy a trained checkpoint to ``dst`` with ``extra`` merged into its metadata
    (e.g. benchmark scores), re-saved weights-only."""
    state, meta = load_checkpoint(src)
    meta = {**meta, "sample_rate": meta.get("spec", {}).get("sample_rate"), **extra}
    return save_checkpoint(dst, state, meta)
