"""Train the CQT diffusion prior (:mod:`archtool.models.diffusion`) on clean music.

Data: every audio file under the ``data`` folders, each channel a mono clip at the model
rate (stereo files also give their mid signal). Clips matching the hold-out globs (or, by
default, whole recordings chosen as Op-GAN's trainer chooses them, so both models are
benchmarked on the same unseen music) are kept for validation. A batch draws random
crops (silent ones are redrawn), flips polarity at random and scales each crop to an RMS
of ``sigma_data`` times a log-uniform gain in [1/2, 2].

Optimisation: Adam with a linear warm-up and a cosine decay over ``steps``, gradient
clipping, and an exponential moving average of the weights (EMA) that is what gets
validated and saved. Validation: on fixed held-out crops with fixed noise, the EDM loss
and the denoising gain (dB) at noise levels from 0.003 to 0.3 (sigma_data 0.1).
Every random draw comes from ``rng_for(seed, f"batch{step}")`` / torch generators seeded
per step, so a resumed run continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from archtool.errors import UsageError
from archtool.models.checkpoint import save_checkpoint
from archtool.models.cqt import CQTConfig
from archtool.models.diffusion import (CQTDenoiser, EDMConfig, UNetConfig, count_parameters, edm_loss)
from archtool.seeding import rng_for, seed_for
from archtool.train.opgan import load_mono, scan_clean, split_holdout

VAL_SIGMAS = (0.003, 0.01, 0.03, 0.1, 0.3)


@dataclass
class DiffusionTrainConfig:
    """Settings of one run (all stored in the checkpoint metadata)."""

    data: list[str]
    output: str
    rate: int = 22050
    segment: int = 32768
    batch: int = 4
    steps: int = 4000
    lr: float = 1e-3
    warmup: int = 200
    ema: float = 0.998
    channels: tuple[int, ...] = (16, 32, 64, 96)
    bins_per_octave: int = 12
    octaves: int = 7
    hop: int = 16
    holdout: list[str] = field(default_factory=list)
    holdout_fraction: float = 0.2
    val_every: int = 200
    val_crops: int = 12
    seed: int = 0
    device: str = "cpu"
    time_limit_s: float = 0.0  # stop (after validating and saving) once this much wall time has run; 0: none

    def model(self) -> CQTDenoiser:
        cqt = CQTConfig(sample_rate=self.rate, bins_per_octave=self.bins_per_octave, octaves=self.octaves,
                        hop=self.hop)
        return CQTDenoiser(UNetConfig(channels=tuple(self.channels), cqt=cqt), EDMConfig())


class CropSampler:
    """Random normalised crops ``(B, segment)`` from mono clips (longer than ``segment``)."""

    def __init__(self, clips: list[np.ndarray], segment: int, sigma_data: float):
        self.clips = [c for c in clips if c.size > segment]
        if not self.clips:
            raise UsageError(f"no clip is longer than the {segment}-sample segment")
        self.segment, self.sigma_data = segment, sigma_data
        w = np.array([c.size - segment for c in self.clips], dtype=np.float64)
        self.p = w / w.sum()

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(20):
            clip = self.clips[int(rng.choice(len(self.clips), p=self.p))]
            start = int(rng.integers(0, clip.size - self.segment))
            x = clip[start:start + self.segment].astype(np.float64)
            rms = float(np.sqrt(np.mean(x ** 2)))
            if rms > 1e-4:
                return x / rms
        return x / max(rms, 1e-8)

    def batch(self, rng: np.random.Generator, size: int) -> torch.Tensor:
        out = []
        for _ in range(size):
            x = self.crop(rng) * self.sigma_data * math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
            out.append(x * (1.0 if rng.random() < 0.5 else -1.0))
        return torch.from_numpy(np.stack(out).astype(np.float32))


def load_clips(files: list[Path], rate: int) -> list[np.ndarray]:
    """Each channel of each file at ``rate``, plus the mid signal of multi-channel files."""
    clips: list[np.ndarray] = []
    for path in files:
        chans = load_mono(path, rate)
        clips.extend(chans)
        if len(chans) > 1:
            clips.append(np.mean(chans, axis=0).astype(np.float32))
    return clips


@torch.no_grad()
def validate(model: CQTDenoiser, crops: torch.Tensor, seed: int) -> dict[str, float]:
    """EDM-weighted loss and denoising gain (dB) per noise level on fixed crops and noise."""
    model.eval()
    out: dict[str, float] = {}
    losses = []
    e = model.edm
    for i, sigma in enumerate(VAL_SIGMAS):
        g = torch.Generator().manual_seed(seed_for(seed, f"val{i}"))
        noise = torch.randn(crops.shape, generator=g).to(crops.device)  # same noise on any device
        err, loss = 0.0, 0.0
        for j in range(0, len(crops), 4):
            x0 = crops[j:j + 4]
            den = model(x0 + sigma * noise[j:j + 4], sigma)
            err += float((den - x0).square().sum())
            w = (sigma ** 2 + e.sigma_data ** 2) / (sigma * e.sigma_data) ** 2
            loss += w * float((den - x0).square().mean()) * len(x0)
        gain = 10 * math.log10(sigma ** 2 * crops.numel() / max(err, 1e-20))
        out[f"gain_db@{sigma:g}"] = round(gain, 3)
        losses.append(loss / len(crops))
        out[f"loss@{sigma:g}"] = round(losses[-1], 5)
    out["val_loss"] = round(float(np.mean(losses)), 5)
    model.train()
    return out


def _data_record(found: list[tuple[Path, str, dict[str, str]]], held: set[str]) -> list[dict[str, str]]:
    return [{"file": key, "source": row.get("source", "unknown"), "licence": row.get("licence", "unknown"),
             "split": "holdout" if key in held else "train"} for _p, key, row in found]


def train_diffusion(cfg: DiffusionTrainConfig, resume: bool = False,
                    log: Callable[[str], None] = print) -> dict:
    """Run training; writes ``cfg.output`` (+ .json) with the best EMA weights by validation
    loss, and ``cfg.output + '.state.pt'`` to resume. Returns the last validation metrics."""
    if cfg.segment % 512:
        raise UsageError(f"--segment {cfg.segment} must be a multiple of 512")
    torch.manual_seed(cfg.seed)
    found = scan_clean(cfg.data)
    keys = [k for _p, k, _r in found]
    held = split_holdout(keys, cfg.holdout, cfg.holdout_fraction)
    train_files = [p for p, k, _r in found if k not in held]
    held_files = [p for p, k, _r in found if k in held]
    if not train_files:
        raise UsageError("every clip is held out; nothing left to train on")
    log(f"training on {len(train_files)} files, holding out {len(held_files)}: {sorted(held)}")
    model = cfg.model().to(cfg.device)
    sampler = CropSampler(load_clips(train_files, cfg.rate), cfg.segment, model.edm.sigma_data)
    val_source = CropSampler(load_clips(held_files or train_files, cfg.rate), cfg.segment, model.edm.sigma_data)
    vrng = rng_for(cfg.seed, "validation")
    val_crops = torch.from_numpy(np.stack([val_source.crop(vrng) * model.edm.sigma_data
                                           for _ in range(cfg.val_crops)]).astype(np.float32)).to(cfg.device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    out = Path(cfg.output)
    state_path = out.with_name(out.name + ".state.pt")
    step, best, history, train_s = 0, math.inf, [], 0.0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, best, train_s = int(state["step"]), float(state["best"]), float(state["train_s"])
        history = json.loads(state["history"])
        log(f"resumed at step {step} (best validation loss {best:.4f})")
    meta_base = {
        "model": "cqt_diffusion", "arch": model.arch(), "sample_rate": cfg.rate, "segment": cfg.segment,
        "parameters": count_parameters(model),
        "train_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "data": {"dirs": list(cfg.data), "files": _data_record(found, held)},
        "how_trained": ("archtool.train.diffusion (`archtool train diffusion`): EDM denoising score matching "
                        "on random crops of clean music, Adam + warm-up + cosine decay, EMA weights saved; "
                        f"device {cfg.device}, {torch.get_num_threads()} torch thread(s)"),
    }
    if step == 0:
        history.append({"step": 0, "train_s": 0.0, **validate(ema, val_crops, cfg.seed)})
        log(f"step 0 validation {history[-1]}")
    model.train()
    t_last, window = time.time(), []
    started = time.time()
    while step < cfg.steps:
        lr = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        if step >= cfg.warmup:
            frac = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
            lr = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        x0 = sampler.batch(rng_for(cfg.seed, f"batch{step}"), cfg.batch).to(cfg.device)
        gen = torch.Generator(device=cfg.device).manual_seed(seed_for(cfg.seed, f"noise{step}"))
        loss = edm_loss(model, x0, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        step += 1
        window.append(loss.item())
        now = time.time()
        train_s += now - t_last
        t_last = now
        if step % 25 == 0:
            log(f"step {step} loss {np.mean(window):.4f} lr {lr:.2e} {train_s / 3600:.2f} h")
            window = []
        out_of_time = cfg.time_limit_s > 0 and now - started > cfg.time_limit_s
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            metrics = validate(ema, val_crops, cfg.seed)
            history.append({"step": step, "train_s": round(train_s, 1), **metrics})
            log(f"step {step} validation {metrics}")
            if metrics["val_loss"] < best:
                best = metrics["val_loss"]
                meta = {**meta_base, "steps": step, "train_hours": round(train_s / 3600, 3),
                        "validation": metrics, "history": history}
                save_checkpoint(out, ema.state_dict(), meta)
                log(f"saved {out} (validation loss {best:.4f})")
            tmp = state_path.with_name(state_path.name + ".tmp")
            torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                        "step": step, "best": best, "train_s": train_s, "history": json.dumps(history)}, tmp)
            tmp.replace(state_path)
            t_last = time.time()
        if out_of_time:
            log(f"time limit of {cfg.time_limit_s:.0f} s reached at step {step}")
            break
    return history[-1] if history else {}
