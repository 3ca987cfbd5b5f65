"""Train the spectral fusion stage (archtool.models.fusion) that follows an Op-GAN checkpoint.

Items are drawn as for Op-GAN training (clean crops degraded with the same recipe) from the
``data`` folders, which may hold clips Op-GAN never saw (its output on unseen material is what
the restorer meets), never from the clips the Op-GAN checkpoint held out: those are the
benchmark's. For each item the frozen Op-GAN output ``G`` and the DSP denoiser's output
``D`` are computed once and cached (``OUTPUT.items.pt``, weights-only tensors); the fusion
network is then trained on random crops of ``crop_frames`` STFT frames (seen with the
network's context on both sides, as in chunked inference) against the clean crop (loss:
the mean of negative SDR and negative SI-SDR, or negative SDR alone). Items drawn from the
``val_data`` folders validate (``OUTPUT.val-items.pt``), else the last ``val_fraction`` of
the items do; the best validation score (SDR + SI-SDR improvement, or SDR alone) is kept.
``init`` starts from another fusion checkpoint's weights. Determinism: item ``i`` comes from
``rng_for(seed, f"item{i}")``, step ``k``'s crops from ``rng_for(seed, f"fusion-step{k}")``,
initialisation from ``seed``.

Files written: ``OUTPUT`` (.pt + .json) and ``OUTPUT.items.pt`` (the cache; delete it to
redraw). Put OUTPUT beside the Op-GAN checkpoint as ``<opgan stem>_fusion.pt`` for the
``opgan`` restorer to use it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from archtool.engine.atomic import sha256_file
from archtool.errors import UsageError
from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.fusion import FusionConfig, SpectralFusion, widen_temporal
from archtool.restore.opgan import DEFAULT_OVERLAP
from archtool.seeding import rng_for, seed_for
from archtool.train.losses import sdr_db, si_sdr_db
from archtool.train.opgan import (Clip, MixedDegrader, PairMaker, TrainConfig, load_mono,
                                  scan_clean)


@dataclass
class FusionTrainConfig:
    """Everything that defines a fusion training run (stored in the checkpoint metadata)."""

    opgan: str
    data: list[str]
    output: str
    rir_dir: str | None = None
    background_dir: str | None = None
    noise_dir: str | None = None
    recipe: str = "rar"
    items: int = 1000
    segment: int = 32768
    steps: int = 2000
    batch: int = 8
    lr: float = 2e-3
    channels: int = 12
    arch: str = "cnn"  # or "unet-tcn" (see archtool.models.fusion)
    hidden: int = 96
    crop_frames: int = 64
    loss: str = "sdr+si-sdr"  # or "sdr"
    val_fraction: float = 0.1
    val_every: int = 200
    seed: int = 0
    threads: int = 1
    extra_holdout: list[str] = field(default_factory=list)
    # clean folders whose clips validate instead of the last ``val_fraction`` of the items:
    # clips neither Op-GAN nor the fusion trained on, as the restorer meets them
    val_data: list[str] = field(default_factory=list)
    val_items: int = 400
    init: str | None = None  # a fusion checkpoint of the same architecture (or a narrower
    # unet-tcn temporal stack, widened) to start from
    # Op-GAN's segment overlap for the cached items; the restorer uses it whenever it runs
    # this fusion (stored in the checkpoint as ``opgan_overlap``)
    opgan_overlap: float = DEFAULT_OVERLAP


# validation item i is drawn from rng stream "item{VAL_FIRST_ITEM + i}": never a training item's draw
VAL_FIRST_ITEM = 10 ** 6


def _stem_key(key: str) -> str:
    return str(Path(key).with_suffix(""))


def training_clips(cfg: FusionTrainConfig, opgan_meta: dict, rate: int,
                   dirs: list[str] | None = None) -> tuple[list[Clip], list[dict]]:
    """Clips of ``dirs`` (default ``cfg.data``) minus every clip the Op-GAN checkpoint held out."""
    held = {_stem_key(k) for k in opgan_meta.get("data", {}).get("holdout", [])}
    held |= {_stem_key(k) for k in cfg.extra_holdout}
    clips, sources = [], []
    for path, key, row in scan_clean(dirs or cfg.data):
        if _stem_key(key) in held:
            continue
        for i, ch in enumerate(load_mono(path, rate)):
            clips.append(Clip(f"{key}#{i}", row.get("source", str(path)), ch))
        sources.append({"file": key, "source": row.get("source", "unknown"),
                        "licence": row.get("licence", "unknown")})
    if not clips:
        raise UsageError("no training clips left after removing the Op-GAN checkpoint's held-out clips")
    return clips, sources


def make_items(cfg: FusionTrainConfig, model, denoise: Callable[[torch.Tensor, int], torch.Tensor],
               clips: list[Clip], progress: Callable[[int], None] | None = None,
               first: int = 0, count: int | None = None) -> dict[str, torch.Tensor]:
    """``{"clean", "input", "opgan", "dsp"}``: float32 ``(items, segment)`` tensors for items
    ``first .. first + count - 1`` (default ``cfg.items``; item ``i`` is the same whatever the
    range it is drawn in)."""
    count = cfg.items if count is None else count
    tcfg = TrainConfig(data=cfg.data, output=cfg.output, rate=model.rate, noise_dir=cfg.noise_dir,
                       rir_dir=cfg.rir_dir, background_dir=cfg.background_dir, recipe=cfg.recipe)
    pairs = PairMaker(clips, model.rate, cfg.segment, MixedDegrader(tcfg))
    out = {k: torch.empty(count, cfg.segment) for k in ("clean", "input", "opgan", "dsp")}
    for i in range(count):
        x, y = pairs.pair(rng_for(cfg.seed, f"item{first + i}"))
        xt = torch.from_numpy(x)[None]
        out["clean"][i], out["input"][i] = torch.from_numpy(y), xt[0]
        out["opgan"][i] = model.restore(xt, overlap=cfg.opgan_overlap)[0]
        out["dsp"][i] = denoise(xt, model.rate)[0]
        if progress:
            progress(i + 1)
    return out


def _overlap_key(cfg: FusionTrainConfig) -> str:
    """Item-cache key suffix: empty at the default overlap, so older caches stay valid."""
    return "" if cfg.opgan_overlap == DEFAULT_OVERLAP else f":overlap={cfg.opgan_overlap}"


def fusion_loss(estimate: torch.Tensor, reference: torch.Tensor, kind: str) -> torch.Tensor:
    """``sdr``: mean negative SDR; ``sdr+si-sdr``: the mean of negative SDR and negative SI-SDR
    (SDR alone buys level accuracy with some scale-invariant distortion)."""
    if kind == "sdr":
        return -sdr_db(estimate, reference).mean()
    if kind == "sdr+si-sdr":
        return -0.5 * (sdr_db(estimate, reference) + si_sdr_db(estimate, reference)).mean()
    raise UsageError(f"unknown fusion loss {kind!r} (sdr, sdr+si-sdr)")


@torch.no_grad()
def validate(net: SpectralFusion, items: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, float]:
    """SDR improvements over the input of the fused output and of Op-GAN alone, in dB."""
    from archtool import metrics as m  # numpy measures, (reference, estimate)

    net.eval()
    fused = torch.cat([net(items["input"][idx[i:i + 32]], items["opgan"][idx[i:i + 32]],
                           items["dsp"][idx[i:i + 32]]) for i in range(0, len(idx), 32)])
    net.train()
    rows = []
    for j, i in enumerate(idx.tolist()):
        c, x, g, y = (t.numpy() for t in (items["clean"][i], items["input"][i], items["opgan"][i], fused[j]))
        base, si_base = m.sdr_db(c, x), m.si_sdr_db(c, x)
        rows.append((m.sdr_db(c, y) - base, m.sdr_db(c, g) - base, m.si_sdr_db(c, y) - si_base,
                     m.si_sdr_db(c, g) - si_base, m.lsd_db(c, y), m.lsd_db(c, g)))
    mean = np.mean(rows, axis=0)
    return {"sdr_improvement_db": float(mean[0]), "opgan_sdr_improvement_db": float(mean[1]),
            "si_sdr_improvement_db": float(mean[2]), "opgan_si_sdr_improvement_db": float(mean[3]),
            "lsd_db": float(mean[4]), "opgan_lsd_db": float(mean[5]), "items": len(rows)}


def train_fusion(cfg: FusionTrainConfig, log: Callable[[str], None] = print,
                 progress: bool = True) -> dict[str, float]:
    """Build (or reuse) the item cache, train, and write the best checkpoint; returns its metrics."""
    from tqdm import tqdm

    from archtool.restore.opgan import OpGANModel
    from archtool.restore.registry import get_restorer, list_restorers

    torch.set_num_threads(max(1, cfg.threads))
    if "denoise" not in list_restorers():
        raise UsageError("the DSP denoise restorer is not installed; fusion needs it")
    model = OpGANModel(cfg.opgan)
    dsp = get_restorer("denoise")

    def denoise(x: torch.Tensor, rate: int) -> torch.Tensor:
        return dsp.process(x, rate, {"seed": 0}, "cpu")

    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    opgan_sha = sha256_file(Path(cfg.opgan))
    clips, sources = training_clips(cfg, model.meta, model.rate)

    def cached_items(cache: Path, key: str, clip_set: list[Clip], first: int, count: int) -> dict[str, torch.Tensor]:
        if cache.exists():
            blob = torch.load(cache, weights_only=True)
            if blob.get("key") == key:
                log(f"{cache}: reusing {count} cached items")
                return blob["items"]
        bar = tqdm(total=count, desc="items", disable=not progress, mininterval=10)
        t0 = time.time()
        made = make_items(cfg, model, denoise, clip_set, progress=lambda i: bar.update(1), first=first, count=count)
        bar.close()
        torch.save({"key": key, "items": made}, cache)
        log(f"{count} items in {time.time() - t0:.0f} s -> {cache}")
        return made

    items = cached_items(output.with_suffix(".items.pt"),
                         f"{opgan_sha}:{cfg.items}:{cfg.segment}:{cfg.seed}:{cfg.recipe}:{sorted(cfg.data)}"
                         f"{_overlap_key(cfg)}",
                         clips, 0, cfg.items)
    if cfg.val_data:
        val_clips, val_sources = training_clips(cfg, model.meta, model.rate, cfg.val_data)
        val_items = cached_items(output.with_suffix(".val-items.pt"),
                                 f"{opgan_sha}:{cfg.val_items}:{cfg.segment}:{cfg.seed}:{cfg.recipe}:"
                                 f"{sorted(cfg.val_data)}{_overlap_key(cfg)}", val_clips, VAL_FIRST_ITEM, cfg.val_items)
        n_train, val_idx = cfg.items, torch.arange(cfg.val_items)
        val_on = f"{cfg.val_items} items from clips of {', '.join(cfg.val_data)} (trained on by neither stage)"
    else:
        val_items, val_sources = items, []
        n_val = max(1, int(round(cfg.val_fraction * cfg.items)))
        val_idx = torch.arange(cfg.items - n_val, cfg.items)
        n_train = cfg.items - n_val
        val_on = f"last {n_val} items (training clips, other crops)"
    torch.manual_seed(seed_for(cfg.seed, "fusion-init") % (2 ** 31))
    fcfg = FusionConfig(channels=cfg.channels, arch=cfg.arch, hidden=cfg.hidden)
    net = SpectralFusion(fcfg)
    if cfg.init:
        state, init_meta = load_checkpoint(Path(cfg.init))
        init_cfg = FusionConfig(**init_meta["arch"])
        if init_cfg.to_dict() == fcfg.to_dict():
            net.load_state_dict(state)
        elif (fcfg.arch == "unet-tcn" and init_cfg.hidden < fcfg.hidden
              and replace(init_cfg, hidden=fcfg.hidden).to_dict() == fcfg.to_dict()):
            widen_temporal(net, state, init_cfg.hidden)
            log(f"widened the temporal stack {init_cfg.hidden} -> {fcfg.hidden} (same output to start)")
        else:
            raise UsageError(f"{cfg.init}: its fusion architecture {init_meta['arch']} differs from "
                             f"this run's {fcfg.to_dict()} (only a narrower unet-tcn temporal stack "
                             "can be widened)")
        log(f"starting from {cfg.init} ({init_meta.get('steps')} steps)")
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k, cfg.steps) / cfg.steps)))
    frames = cfg.segment // fcfg.hop + 1
    ctx, length = fcfg.receptive_frames, cfg.crop_frames
    if frames < length + 2 * ctx:
        raise UsageError(f"segment of {cfg.segment} samples is too short for crops of {length} frames "
                         f"with {ctx} frames of context on each side")
    crop_len = (length - 1) * fcfg.hop
    best, best_metrics, history = -math.inf, {}, []
    t0 = time.time()
    bar = tqdm(total=cfg.steps, desc="fusion", disable=not progress, mininterval=20)
    for step in range(1, cfg.steps + 1):
        rng = rng_for(cfg.seed, f"fusion-step{step}")
        b = torch.from_numpy(rng.integers(0, n_train, cfg.batch))
        f0 = int(rng.integers(ctx, frames - length - ctx + 1))
        wide, centre = slice(f0 - ctx, f0 + length + ctx), slice(ctx, ctx + length)
        X, G, D = (net.stft(items[k][b])[..., wide] for k in ("input", "opgan", "dsp"))
        w = net.weights(X, G, D)[..., centre]
        mixed = net.mix_weights(X[..., centre], G[..., centre], D[..., centre], w)
        ref = net.istft(net.stft(items["clean"][b])[..., f0:f0 + length], crop_len)
        loss = fusion_loss(net.istft(mixed, crop_len), ref, cfg.loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        bar.update(1)
        if step % cfg.val_every == 0 or step == cfg.steps:
            metrics = validate(net, val_items, val_idx)
            loss_value = float(loss.detach())
            history.append({"step": step, "loss": round(loss_value, 3),
                            "val_sdr_improvement_db": round(metrics["sdr_improvement_db"], 3)})
            log(f"step {step} loss {loss_value:.3f} val dSDR fused {metrics['sdr_improvement_db']:+.2f} "
                f"(Op-GAN alone {metrics['opgan_sdr_improvement_db']:+.2f}), dSI-SDR "
                f"{metrics['si_sdr_improvement_db']:+.2f} ({metrics['opgan_si_sdr_improvement_db']:+.2f}) dB")
            score = metrics["sdr_improvement_db"] + (metrics["si_sdr_improvement_db"] if cfg.loss != "sdr" else 0.0)
            if score > best:
                best, best_metrics = score, metrics
                save_checkpoint(output, net.state_dict(), {
                    "model": "opgan-fusion", "arch": fcfg.to_dict(), "sample_rate": model.rate,
                    "opgan_checkpoint": Path(cfg.opgan).name, "opgan_sha256": opgan_sha,
                    "opgan_overlap": cfg.opgan_overlap,
                    "steps": step, "train_seconds": round(time.time() - t0, 1),
                    "training": asdict(cfg),
                    "data": {"dirs": cfg.data, "files": sources, "background_dir": cfg.background_dir,
                             "rir_dir": cfg.rir_dir,
                             "val_files": val_sources,
                             "excluded": "every clip the Op-GAN checkpoint held out (its data.holdout)"},
                    "validation": metrics | {"on": val_on},
                    "history": history,
                    "parameters": sum(p.numel() for p in net.parameters())})
    bar.close()
    return best_metrics
