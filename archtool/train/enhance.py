"""Training of the two-stage phone enhancer (:class:`~archtool.models.enhance.PhoneEnhancer`).

Pairs: clean speech segments from ``data_dir`` (held-out clips excluded) through a phone
channel, drawn by :class:`archtool.train.bwe.PairSampler` (half the team's ``phone``
degradation recipe, half our telephone-channel simulation, training noises only).

Generator loss (all terms about 1 at the start):

* stage 1: :func:`compressed_loss` (spectral convergence + MSE of ``|X|^0.3`` magnitudes)
  of the denoised signal against the clean one on the model's STFT, **below the phone
  cutoff only** (above it stage 2 works);
* output: :func:`compressed_loss` at FFT 256/512/1024 + 0.5 x L1 of natural-log mel spectra
  (80 bands, FFT 1024) of the output against the clean speech, over the full band;
* stage 2's band-envelope L1 (:func:`archtool.train.bwe.generated_band_losses`, x 0.5);
* a guard against mask saturation: ``mean(relu(|logit| - 6)^2)``;
* from ``adv_start`` on: ``adv_weight`` x LSGAN generator loss + ``fm_weight`` x feature
  matching against a :class:`~archtool.models.enhance.SpectrogramDiscriminator`, which is
  trained with the LSGAN discriminator loss on clean vs enhanced segments.

Stage 2 can start from an existing checkpoint's extender (``init``). Validation: wide-band
PESQ (when the ``pesq`` package is installed) and LSD of the enhancer alone on the
``validation`` split of :func:`archtool.train.bwe_data.phone_pairs` (never the benchmark's
clips); every evaluation is saved as a checkpoint (``OUT.pt``), the best by PESQ also as
``OUT.best.pt``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn import functional as F

from archtool.models.bwe import stft_sizes
from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.enhance import MODEL_RATE, EnhanceConfig, PhoneEnhancer, SpectrogramDiscriminator
from archtool.train import bwe_data as D
from archtool.train.bwe import BweTrainConfig, PairSampler, _phone_degrader, generated_band_losses, sources_rows
from archtool.train.losses import lsgan_discriminator_loss, lsgan_generator_loss


@dataclass
class EnhanceTrainConfig:
    """What ``archtool train enhance`` runs."""

    data_dir: Path
    out: Path
    noise_dir: Path | None = None
    eval_data: Path | None = None   # the shared data folder holding speech_eval/ (validation split)
    init: Path | None = None        # checkpoint whose extender starts stage 2
    steps: int = 2000
    batch: int = 8
    segment_s: float = 1.0
    lr: float = 1e-3
    lr_stage2: float = 2e-4
    seed: int = 0
    resume: bool = False
    adv_start: int | None = None     # step from which the adversarial loss is on (None: never)
    adv_weight: float = 0.05
    fm_weight: float = 0.1
    eval_every: int = 100
    log: Callable[[str], None] = print


class LogMelLoss(torch.nn.Module):
    """L1 of natural-log mel spectra (80 bands, FFT 1024, hop 256) at 16 kHz."""

    def __init__(self, n_mels: int = 80, n_fft: int = 1024):
        super().__init__()
        import torchaudio
        self.n_fft = n_fft
        fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, MODEL_RATE / 2, n_mels, MODEL_RATE)
        self.register_buffer("fb", fb)

    def mel(self, x: torch.Tensor) -> torch.Tensor:
        win = torch.hann_window(self.n_fft, device=x.device)
        spec = torch.stft(x, self.n_fft, self.n_fft // 4, window=win, return_complex=True).abs()
        return torch.log(torch.einsum("bft,fm->bmt", spec, self.fb).clamp_min(1e-5))

    def forward(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.mel(y), self.mel(s))


def compressed_loss(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Spectral convergence + MSE of power-law compressed magnitudes (``|X|^0.3``, relative to
    the clean speech's mean): estimate ``a`` against clean ``b``, ``(B, F, T)`` magnitudes,
    over the bins where ``weight`` ``(B, F, 1)`` is 1. Unlike log-magnitude L1 it does not
    weigh near-silent bins like speech (which taught an earlier stage 1 to over-suppress)."""
    w = torch.ones_like(b[:, :, :1]) if weight is None else weight
    sc = torch.linalg.norm((b - a) * w, dim=(1, 2)) / torch.linalg.norm(b * w, dim=(1, 2)).clamp_min(1e-8)
    ca, cb = (a + 1e-8) ** 0.3, (b + 1e-8) ** 0.3
    ref = ((cb ** 2) * w).sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * b.shape[-1]).clamp_min(1.0)
    mse = (((ca - cb) ** 2) * w).sum(dim=(1, 2)) / (w.sum(dim=(1, 2)) * b.shape[-1]).clamp_min(1.0)
    return sc.mean() + (mse / ref.clamp_min(1e-12)).mean()


class OutputLoss(torch.nn.Module):
    """:func:`compressed_loss` at FFT 256/512/1024 (quarter hops) + 0.5 x :class:`LogMelLoss`."""

    def __init__(self, resolutions: tuple[int, ...] = (256, 512, 1024)):
        super().__init__()
        self.resolutions = resolutions
        self.mel = LogMelLoss()

    def forward(self, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        total = y.new_zeros(())
        for n in self.resolutions:
            win = torch.hann_window(n, device=y.device)
            a = torch.stft(y, n, n // 4, window=win, return_complex=True).abs()
            b = torch.stft(s, n, n // 4, window=win, return_complex=True).abs()
            total = total + compressed_loss(a, b)
        return total / len(self.resolutions) + 0.5 * self.mel(y, s)


def stage1_loss(model: PhoneEnhancer, y1: torch.Tensor, s: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """:func:`compressed_loss` of stage 1 against the clean speech below the cutoff (model STFT)."""
    ext = model.extender
    a, b = ext.stft(y1, MODEL_RATE).abs(), ext.stft(s, MODEL_RATE).abs()
    n_fft, _ = stft_sizes(MODEL_RATE)
    bins = torch.arange(a.shape[1], device=a.device)
    below = (bins[None, :] < (cutoff * n_fft / MODEL_RATE)[:, None]).float()[..., None]
    return compressed_loss(a, b, below)


def adversarial_losses(disc: SpectrogramDiscriminator, y: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generator-side (LSGAN loss, feature-matching L1) of ``y`` against clean ``s``."""
    fake, real = disc(y), disc(s)
    adv = sum(lsgan_generator_loss(sc) for sc, _ in fake) / len(fake)
    fm = sum(F.l1_loss(f, r.detach()) for (_, ff), (_, rf) in zip(fake, real) for f, r in zip(ff, rf))
    return adv, fm / sum(len(ff) for _, ff in fake)


def pesq_wb(ref: np.ndarray, est: np.ndarray) -> float:
    """Wide-band PESQ at 16 kHz, NaN when the ``pesq`` package is absent or fails."""
    try:
        from pesq import pesq
        n = min(len(ref), len(est))
        return float(pesq(MODEL_RATE, ref[:n].astype(np.float64), est[:n].astype(np.float64), "wb"))
    except Exception:
        return float("nan")


def evaluate(model: PhoneEnhancer, pairs: list, gains: tuple[float, ...] = (1.0, 0.5)) -> dict[str, float]:
    """Mean PESQ-WB / LSD of the enhancer alone (cutoff estimated as at inference) per gain."""
    from archtool.restore.enhance import enhance_with
    from archtool.train.bwe_metrics import lsd
    model.eval()
    res: dict[str, float] = {"clips": len(pairs)}
    for g in gains:
        p, l_ = [], []
        for _, _, s, x in pairs:
            y = enhance_with(model, x[None], MODEL_RATE, gain=g)[0]
            p.append(pesq_wb(s, y))
            l_.append(lsd(s.astype(np.float64), y.astype(np.float64)))
        res[f"pesq_gain{g}"] = float(np.nanmean(p)) if np.isfinite(p).any() else float("nan")
        res[f"lsd_gain{g}"] = float(np.mean(l_))
    inputs = [pesq_wb(s, x) for _, _, s, x in pairs]
    res["pesq_input"] = float(np.nanmean(inputs)) if np.isfinite(inputs).any() else float("nan")
    model.train()
    return res


def _init_from(model: PhoneEnhancer, path: Path) -> None:
    state, _ = load_checkpoint(path)
    ext = {k[len("extender."):]: v for k, v in state.items() if k.startswith("extender.")}
    model.extender.load_state_dict(ext)


def train_enhance(cfg: EnhanceTrainConfig) -> dict[str, Any]:
    """Train; writes ``cfg.out`` (+ ``.json``) at every evaluation. Returns the last metadata."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    bwe_arch = {"width": 32, "eq": True, "norm": True}
    if cfg.init is not None:
        bwe_arch = load_checkpoint(cfg.init)[1]["arch"]
        bwe_arch = bwe_arch.get("bwe", bwe_arch)
    model = PhoneEnhancer(EnhanceConfig(bwe=dict(bwe_arch)))
    disc = SpectrogramDiscriminator()
    start, history, best = 0, [], -math.inf
    out = Path(cfg.out)
    if cfg.resume and out.exists():
        state, meta = load_checkpoint(out)
        model = PhoneEnhancer(EnhanceConfig(**meta["arch"]))
        model.load_state_dict(state)
        start, history = int(meta.get("steps", 0)), meta.get("history", [])
        dpath = out.with_suffix(".disc.pt")
        if dpath.exists():
            disc.load_state_dict(torch.load(dpath, weights_only=True))
        rng = np.random.default_rng([cfg.seed, start])
        best = max([h.get("pesq_gain1.0", -math.inf) for h in history] + [-math.inf])
        cfg.log(f"resumed from {out} at step {start}")
    elif cfg.init is not None:
        _init_from(model, Path(cfg.init))
        cfg.log(f"stage 2 initialised from {cfg.init}")
    train_clips = D.load_clips(cfg.data_dir, False, D.HELD_OUT_SPEECH)
    noises = D.load_clips(cfg.noise_dir, False, D.HELD_OUT_NOISE) if cfg.noise_dir else []
    bcfg = BweTrainConfig(data_dir=cfg.data_dir, out=out, task="phone", rate=MODEL_RATE, batch=cfg.batch,
                          segment_s=cfg.segment_s, seed=cfg.seed, noise_dir=cfg.noise_dir)
    sampler = PairSampler(bcfg, train_clips, noises, _phone_degrader(bcfg))
    val_pairs = D.phone_pairs(cfg.eval_data, "validation") if cfg.eval_data else []
    opt = torch.optim.Adam([{"params": model.denoiser.parameters(), "lr": cfg.lr, "base": cfg.lr},
                            {"params": model.extender.parameters(), "lr": cfg.lr_stage2, "base": cfg.lr_stage2}],
                           betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.8, 0.99))
    out_loss = OutputLoss()
    meta: dict[str, Any] = {}
    t0, running = time.time(), []
    for step in range(start + 1, cfg.steps + 1):
        scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.steps)))
        for g in opt.param_groups:
            g["lr"] = g["base"] * scale
        x_np, s_np, c_np, _ = sampler.batch(rng)
        x, s, cut = torch.from_numpy(x_np), torch.from_numpy(s_np), torch.from_numpy(c_np)
        parts = model(x, cut, generator=gen, return_parts=True)
        y = parts["y"]
        l1 = stage1_loss(model, parts["stage1"], s, cut)
        lo = out_loss(y, s)
        env, _ = generated_band_losses(model.extender, parts, s, MODEL_RATE, cut)
        guard = torch.relu(parts["logits"].abs() - 6.0).pow(2).mean()
        loss = l1 + lo + 0.5 * env + guard
        adv_on = cfg.adv_start is not None and step > cfg.adv_start
        adv = fm = torch.zeros(())
        if adv_on:
            adv, fm = adversarial_losses(disc, y, s)
            loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        d_loss = torch.zeros(())
        if adv_on:
            d_loss = sum(lsgan_discriminator_loss(r, f) for (r, _), (f, _) in zip(disc(s), disc(y.detach())))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        running.append([loss.item(), l1.item(), lo.item(), env.item(), adv.item(), fm.item(), d_loss.item()])
        if step % 10 == 0:
            m = np.mean(running, axis=0)
            running = []
            cfg.log(f"step {step} loss {m[0]:.4f} stage1 {m[1]:.4f} out {m[2]:.4f} env {m[3]:.4f} "
                    f"adv {m[4]:.4f} fm {m[5]:.4f} d {m[6]:.4f} {time.time() - t0:.0f}s")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val = evaluate(model, val_pairs) if val_pairs else {}
            history.append({"step": step, "adversarial": adv_on, **val})
            cfg.log(f"eval step {step}: {json.dumps(val)}")
            meta = _metadata(cfg, model, step, val, history, train_clips, noises)
            save_checkpoint(out, model.state_dict(), meta)
            torch.save(disc.state_dict(), out.with_suffix(".disc.pt"))
            score = val.get("pesq_gain1.0", float("nan"))
            if score == score and score > best:
                best = score
                save_checkpoint(out.with_name(out.stem + ".best.pt"), model.state_dict(), meta)
                cfg.log(f"best so far (PESQ-WB {score:.3f})")
    return meta


def _metadata(cfg: EnhanceTrainConfig, model: PhoneEnhancer, step: int, val: dict, history: list,
              train_clips: list[D.Clip], noises: list[D.Clip]) -> dict[str, Any]:
    return {
        "model": "phone_enhancer_v2",
        "task": "phone",
        "arch": model.config.to_dict(),
        "rate": MODEL_RATE,
        "steps": step,
        "batch": cfg.batch,
        "segment_s": cfg.segment_s,
        "seed": cfg.seed,
        "init": str(Path(cfg.init).name) if cfg.init else None,
        "adversarial": {"start": cfg.adv_start, "weight": cfg.adv_weight, "fm_weight": cfg.fm_weight,
                        "discriminator": "multi-resolution log-magnitude spectrogram (FFT 256/512/1024), LSGAN"},
        "loss": "stage-1 SC + compressed-magnitude MSE below the cutoff + multi-resolution (256/512/1024) SC + "
                "compressed-magnitude MSE + 0.5 x log-mel L1 (output) + 0.5 x band-envelope L1"
                + (" + LSGAN + feature matching" if cfg.adv_start is not None else ""),
        "degradations": "half: archtool degrade recipe 'phone' (rir + training backgrounds); half: telephone channel "
                        "(noise 5-30 dB, colouring, 200-400..3200-3600 Hz band-pass, 8 kHz, mu-law)",
        "data": {"train": sources_rows(cfg.data_dir, train_clips),
                 "held_out": list(D.HELD_OUT_SPEECH),
                 "validation": list(D.PHONE_VALIDATION) + ["(shared/data/speech_eval; see its README for sources)"],
                 "noise": sources_rows(cfg.noise_dir, noises) if noises else []},
        "validation": val,
        "history": history[-30:],
        "params": int(sum(p.numel() for p in model.parameters())),
    }
