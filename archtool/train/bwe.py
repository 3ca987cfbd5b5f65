"""Training loops for bandwidth extension (speech, music); pairs for phone enhancement.

Tasks:

* ``speech``: speech at ``rate`` band-limited by a factor (2 or 4) with seed 002's four
  downsampling schemes; the model fills from a cutoff drawn in 0.7-0.97 of the low
  Nyquist (so it is robust to where the anti-alias filter really stops);
* ``music``: music at 44.1 or 22.05 kHz low-passed at 3-11 kHz by random filters;
* ``phone`` (pairs only, :class:`PairSampler`): speech at 16 kHz through the team's
  ``phone`` degradation recipe or :func:`~archtool.train.bwe_data.phone_degrade`; the
  two-stage enhancer that learns from them is trained by :mod:`archtool.train.enhance`.

Loss (seed 002's T-PCM plus envelope terms): ``alpha * MAE(y, s) + (1 - alpha) * PCM``
where PCM averages the |Re|+|Im| spectral-magnitude L1 of the signal and of the
residual (``s - x`` against ``y - x``) on 512-sample Hamming frames, plus the L1 of
log10 band densities of the generated band, plus the L1 of log10 power per bin in the
generated band (the quantity LSD measures).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from archtool.models.bwe import BandwidthExtender, BweConfig, effective_cutoff_hz, stft_sizes
from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.train import bwe_data as D

TASKS = ("speech", "music")


@dataclass
class BweTrainConfig:
    """What ``archtool train bwe`` runs."""

    data_dir: Path
    out: Path
    task: str = "speech"
    rate: int = 16000
    factor: int = 2
    steps: int = 2000
    batch: int = 8
    segment_s: float = 1.0
    lr: float = 1e-3
    seed: int = 0
    resume: bool = False
    eval_every: int = 200
    alpha: float = 0.5          # time vs PCM weight inside T-PCM
    tpcm_weight: float = 4.0
    noise_dir: Path | None = None
    model: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print


def _sm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|Re|+|Im| spectral magnitude L1 on 512/256 Hamming frames (Pandey & Wang)."""
    win = torch.hamming_window(512, device=a.device)
    A = torch.stft(a, 512, 256, window=win, return_complex=True)
    B = torch.stft(b, 512, 256, window=win, return_complex=True)
    return ((A.real.abs() + A.imag.abs()) - (B.real.abs() + B.imag.abs())).abs().mean()


def tpcm_loss(y: torch.Tensor, s: torch.Tensor, x: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Seed 002's T-PCM: ``alpha * MAE + (1 - alpha) * (SM(y, s) + SM(y - x, s - x)) / 2``."""
    pcm = 0.5 * (_sm(y, s) + _sm(y - x, s - x))
    return alpha * (y - s).abs().mean() + (1 - alpha) * pcm


def generated_band_losses(model: BandwidthExtender, parts: dict, s: torch.Tensor, rate: int,
                          cutoff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(envelope L1, per-bin log-power L1) over the generated band, in log10 units."""
    n_fft, _ = stft_sizes(rate)
    spec_s = model.stft(s, rate)
    bins = torch.arange(spec_s.shape[1], device=s.device)
    kc = torch.ceil(cutoff * n_fft / rate)
    gen = (bins[None, :] >= kc[:, None]).float()[..., None]
    pow_s = spec_s.real ** 2 + spec_s.imag ** 2
    ref = torch.log10(pow_s.mean(dim=(1, 2), keepdim=True) + 1e-10)
    true_env = model.band_log_density(pow_s, rate, gen)
    upper = torch.from_numpy(np.asarray(model_band_upper(model, rate))).to(s.device)
    lower_ok = (upper[None, :] > cutoff[:, None]).float()[..., None]
    # floor both sides 6 decades under the clip level so silence does not dominate
    env_l1 = ((parts["log_density"] - torch.maximum(true_env, ref - 6)).abs()
              * lower_ok).sum() / (lower_ok.sum() * true_env.shape[-1]).clamp_min(1.0)
    pow_y = parts["spec"].real ** 2 + parts["spec"].imag ** 2
    bin_l1 = ((torch.log10(pow_y + 1e-10) - torch.log10(pow_s + 1e-10).maximum(ref - 6)).abs()
              * gen).sum() / (gen.sum() * pow_s.shape[-1]).clamp_min(1.0)
    return env_l1, bin_l1


def model_band_upper(model: BandwidthExtender, rate: int) -> np.ndarray:
    from archtool.models.bwe import _band_matrices
    n_fft, _ = stft_sizes(rate)
    return _band_matrices(model.config.n_bands, n_fft, rate)[2].numpy()


class PairSampler:
    """Draws ``(input, target, cutoff_hz, rate)`` batches for a task (numpy, explicit rng)."""

    def __init__(self, cfg: BweTrainConfig, clips: list[D.Clip], noises: list[D.Clip], degrader: Any = None):
        self.cfg, self.clips, self.noises, self.degrader = cfg, clips, noises, degrader

    def batch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        cfg = self.cfg
        rate = cfg.rate
        if cfg.task == "music" and rng.random() < 0.3:
            rate = 22050
        xs, ss, cs = [], [], []
        for _ in range(cfg.batch):
            clip = self.clips[int(rng.integers(0, len(self.clips)))]
            s = D.random_segment(clip, rate, cfg.segment_s, rng)
            if cfg.task == "speech":
                low = rate // cfg.factor
                scheme = D.SCHEMES[int(rng.integers(0, len(D.SCHEMES)))]
                x = D.bandlimit_pair(s, rate, low, scheme, rng)
                cut = rng.uniform(0.7, 0.97) * low / 2
            elif cfg.task == "music":
                nominal = rng.uniform(3000.0, min(11000.0, 0.8 * rate / 2))
                x = D.lowpass_music(s, rate, nominal, rng)
                cut = nominal * rng.uniform(0.85, 1.0)
            elif self.degrader is not None and rng.random() < 0.5:
                y, labels = self.degrader(s[None].astype(np.float32), rate, rng)
                x = np.asarray(y[0], np.float64)
                label_cut = float((labels or {}).get("cutoff_hz") or 0.0)
                cut = float(np.clip(label_cut if label_cut > 0 else 3400.0, 2500.0, 7800.0)) * rng.uniform(0.85, 1.0)
            else:
                noise = None
                if self.noises and rng.random() < 0.85:
                    nc = self.noises[int(rng.integers(0, len(self.noises)))]
                    noise = D.resample(nc.audio, nc.rate, rate)
                x = D.phone_degrade(s, rate, noise, rng)
                cut = 3400.0 * rng.uniform(0.9, 1.05)
            xs.append(x)
            ss.append(s)
            cs.append(cut)
        return (np.stack(xs).astype(np.float32), np.stack(ss).astype(np.float32),
                np.asarray(cs, np.float32), rate)


def build_model(task: str, overrides: dict[str, Any]) -> torch.nn.Module:
    """A fresh extender for ``task``."""
    return BandwidthExtender(BweConfig(**({"width": 32} | overrides)))


def evaluate(model: torch.nn.Module, cfg: BweTrainConfig, clips: list[D.Clip]) -> dict[str, float]:
    """Validation on held-out clips with fixed degradations: LSD (log10, 2048-point) and SNR."""
    from archtool.train.bwe_metrics import lsd, snr_db
    rng = np.random.default_rng(12345)
    lsds, snrs = [], []
    model.eval()
    with torch.no_grad():
        for i, clip in enumerate(clips[:6]):
            rate = cfg.rate
            s = D.resample(clip.audio, clip.rate, rate)[: int(6 * rate)]
            s = s / (np.sqrt(np.mean(s ** 2)) + 1e-9) * 0.1
            if cfg.task == "speech":
                low = rate // cfg.factor
                x = D.bandlimit_pair(s, rate, low, "decimate", rng)
                cut = effective_cutoff_hz(x, rate, low / 2)
                cut = float(np.clip(cut, 0.7 * low / 2, 0.97 * low / 2))
            else:
                nominal = (4000.0, 6000.0, 8000.0, 11000.0)[i % 4]
                x = D.lowpass_music(s, rate, nominal, rng)
                cut = nominal * 0.95
            xt = torch.from_numpy(x.astype(np.float32))[None]
            y = model(xt, rate, torch.tensor([cut]), generator=torch.Generator().manual_seed(0))[0].numpy()
            lsds.append(lsd(s, y))
            snrs.append(snr_db(s, y))
    model.train()
    return {"lsd": float(np.mean(lsds)), "snr_db": float(np.mean(snrs)), "clips": len(lsds)}


def train_bwe(cfg: BweTrainConfig) -> dict[str, Any]:
    """Train, writing ``cfg.out`` (.pt + .json) at every evaluation that improves LSD.

    Returns the metadata of the last checkpoint written.
    """
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r} (one of {', '.join(TASKS)})")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    held = D.HELD_OUT_MUSIC if cfg.task == "music" else D.HELD_OUT_SPEECH
    train_clips = D.load_clips(cfg.data_dir, False, held)
    eval_clips = D.load_clips(cfg.data_dir, True, held)
    if not train_clips:
        raise ValueError(f"{cfg.data_dir}: no training audio found")
    noises: list[D.Clip] = []
    model = build_model(cfg.task, cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, best, history = 0, math.inf, []
    if cfg.resume and Path(cfg.out).exists():
        state, meta = load_checkpoint(cfg.out)
        model.load_state_dict(state)
        start = int(meta.get("steps", 0))
        best = float(meta.get("validation", {}).get("lsd", math.inf))
        history = meta.get("history", [])
        rng = np.random.default_rng([cfg.seed, start])
        cfg.log(f"resumed from {cfg.out} at step {start}")
    sampler = PairSampler(cfg, train_clips, noises)
    meta: dict[str, Any] = {}
    t0, running = time.time(), []
    for step in range(start + 1, cfg.steps + 1):
        lr = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x_np, s_np, c_np, rate = sampler.batch(rng)
        x, s, cut = torch.from_numpy(x_np), torch.from_numpy(s_np), torch.from_numpy(c_np)
        parts = model(x, rate, cut, generator=gen, return_parts=True)
        y = parts["y"]
        env_l1, bin_l1 = generated_band_losses(model, parts, s, rate, cut)
        scale = s.abs().mean(dim=-1, keepdim=True).clamp_min(1e-4)
        tp = tpcm_loss(y / scale, s / scale, x / scale, cfg.alpha)
        tpcm_weight = cfg.tpcm_weight
        loss = tpcm_weight * tp / 10.0 + env_l1 + 0.5 * bin_l1
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        running.append([loss.item(), tp.item(), env_l1.item(), bin_l1.item()])
        if step % 20 == 0:
            m = np.mean(running, axis=0)
            running = []
            cfg.log(f"step {step} loss {m[0]:.4f} tpcm {m[1]:.4f} env {m[2]:.4f} bin {m[3]:.4f} "
                    f"lr {lr:.2e} {time.time() - t0:.0f}s")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val = evaluate(model, cfg, eval_clips) if eval_clips else {"lsd": float("nan")}
            history.append({"step": step, **val})
            cfg.log(f"eval step {step}: {json.dumps(val)}")
            better = not (val["lsd"] >= best)
            if better or not Path(cfg.out).exists():
                best = min(best, val["lsd"]) if val["lsd"] == val["lsd"] else best
                meta = _metadata(cfg, model, step, val, history, train_clips, eval_clips, noises)
                save_checkpoint(cfg.out, model.state_dict(), meta)
                cfg.log(f"saved {cfg.out} (lsd {val['lsd']:.4f})")
    return meta


def _phone_degrader(cfg: BweTrainConfig) -> Any:
    """The team's ``phone`` degradation recipe (archtool.degrade) over training noises only
    (held-out noises are linked out of a private folder), or None when unavailable."""
    try:
        from archtool.degrade import Degrader
    except ImportError:
        return None
    background = None
    if cfg.noise_dir is not None and Path(cfg.noise_dir).is_dir():
        background = Path(cfg.out).parent / f".{Path(cfg.out).stem}_noise"
        background.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(cfg.noise_dir).iterdir()):
            link = background / f.name
            if f.stem not in D.HELD_OUT_NOISE and not link.exists():
                link.symlink_to(f.resolve())
    rir = Path(cfg.data_dir).parent / "rir"
    return Degrader("phone", rir_dir=rir if rir.is_dir() else None, background_dir=background)


def _metadata(cfg: BweTrainConfig, model: torch.nn.Module, step: int, val: dict, history: list,
              train_clips: list[D.Clip], eval_clips: list[D.Clip], noises: list[D.Clip]) -> dict[str, Any]:
    arch = model.config.to_dict() if hasattr(model, "config") else {}
    return {
        "model": "bandwidth_extender",
        "task": cfg.task,
        "arch": arch,
        "rate": cfg.rate,
        "factor": cfg.factor if cfg.task == "speech" else None,
        "steps": step,
        "batch": cfg.batch,
        "segment_s": cfg.segment_s,
        "seed": cfg.seed,
        "loss": ("T-PCM (alpha=%.2f) x %.1f/10 + band-envelope L1 + 0.5 x bin log-power L1" % (
            cfg.alpha, cfg.tpcm_weight)),
        "degradations": {"speech": "seed 002 schemes: cheby_subsample, decimate, resample, mix",
                         "music": "low-pass 3-11 kHz: butterworth / chebyshev / brick wall / resample"}[cfg.task],
        "data": {"train": sources_rows(cfg.data_dir, train_clips),
                 "held_out": sorted({c.name.split("#")[0] for c in eval_clips}),
                 "noise": sources_rows(cfg.noise_dir, noises) if noises else []},
        "validation": val,
        "history": history[-20:],
        "params": int(sum(p.numel() for p in model.parameters())),
    }


def sources_rows(folder: Path | None, clips: list[D.Clip]) -> list[dict[str, str]]:
    return D.sources_of(Path(folder), clips) if folder is not None else []
