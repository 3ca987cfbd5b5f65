"""Train the Op-GAN restorer on clean clips degraded on the fly with a degrade recipe.

Each step draws ``batch`` random crops of ``segment`` samples from the training clips,
degrades each with :class:`archtool.degrade.Degrader` (default recipe ``rar``: a random
blend of noise, background mixture and reverberation), peak-normalises the pair by the
degraded crop, and takes one generator step (L1 + multi-resolution STFT + LSGAN) and,
after ``adv_start`` steps, one discriminator step.

Determinism: every random draw of step ``k`` comes from ``rng_for(seed, f"step{k}")``,
model initialisation from ``seed``, and validation items from ``rng_for(seed, "val")``,
so a run resumed from its state file continues exactly as an uninterrupted one would.

Files written: the checkpoint ``OUTPUT`` (.pt + .json, best validation SDR so far, via
:func:`archtool.models.checkpoint.save_checkpoint`) and ``OUTPUT.state.pt`` (weights-only
resume state: both networks, both optimisers, step, history).
"""
from __future__ import annotations

import csv
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchaudio

from archtool.audio.io import read_audio
from archtool.errors import UsageError
from archtool.models.checkpoint import load_checkpoint, save_checkpoint
from archtool.models.opgan import OpGANDiscriminator, OpGANGenerator, count_parameters
from archtool.seeding import rng_for, seed_for
from archtool.train.losses import (MultiResolutionSTFTLoss, lsgan_discriminator_loss,
                                   lsgan_generator_loss, sdr_db, si_sdr_db)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".m4a", ".opus"}
MIN_RMS = 3e-3  # crops quieter than this (after the clip's own peak normalisation) are redrawn


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint metadata)."""

    data: list[str]
    output: str
    rate: int = 16000
    noise_dir: str | None = None
    rir_dir: str | None = None
    background_dir: str | None = None
    recipe: str = "rar"
    steps: int = 2000
    batch: int = 4
    segment: int = 16384
    width: int = 8
    depth: int = 6
    q: int = 3
    residual: bool = True
    max_mult: int = 4
    disc_width: int = 8
    lr: float = 5e-4
    disc_lr: float = 2e-4
    w_l1: float = 100.0
    w_stft: float = 1.0
    w_adv: float = 1.0
    adv_start: int = 1000
    grad_clip: float = 10.0
    val_every: int = 100
    val_items: int = 64
    holdout: list[str] = field(default_factory=list)
    holdout_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    workers: int = 0  # processes preparing batches ahead (0: in the training loop)
    time_limit_s: float = 0.0  # stop (after validating and saving) once this much wall time has run; 0: none
    init: str | None = None  # an Op-GAN checkpoint of the same generator to fine-tune (fresh discriminator)


@dataclass
class Clip:
    """One mono training signal at the model rate, with where it came from."""

    key: str  # data folder name / relative path + channel, e.g. "speech/a.flac#0"
    source: str
    audio: np.ndarray  # float32 (samples,)

    @property
    def folder(self) -> str:
        return self.key.split("/", 1)[0]


def _group(stem: str) -> str:
    """Clips cut from the same recording share a group: the stem without trailing digits."""
    return re.sub(r"[\d_\-.]+$", "", stem) or stem


def _manifest(root: Path) -> dict[str, dict[str, str]]:
    """Rows of MANIFEST.csv in ``root`` or its parent, keyed by path relative to that folder."""
    for base in (root, root.parent):
        f = base / "MANIFEST.csv"
        if f.exists():
            with open(f, newline="") as fh:
                return {str((base / r["file"]).resolve()): r for r in csv.DictReader(fh) if r.get("file")}
    return {}


def scan_clean(dirs: list[str]) -> list[tuple[Path, str, dict[str, str]]]:
    """Audio files under ``dirs``: ``(path, key 'dirname/relpath', manifest row or {})``."""
    found = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise UsageError(f"{root}: --data must be a folder of clean audio")
        rows = _manifest(root)
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file():
                found.append((p, f"{root.name}/{p.relative_to(root)}", rows.get(str(p.resolve()), {})))
    if not found:
        raise UsageError(f"no audio files found under {', '.join(dirs)}")
    return found


def split_holdout(keys: list[str], patterns: list[str], fraction: float) -> set[str]:
    """Keys held out of training: those matching ``patterns`` (fnmatch on the key or its
    file name), else whole recording groups chosen by a fixed hash until ``fraction``."""
    import fnmatch

    if patterns:
        return {k for k in keys if any(fnmatch.fnmatch(k, p) or fnmatch.fnmatch(Path(k).name, p)
                                       for p in patterns)}
    groups = sorted({_group(Path(k).stem) for k in keys}, key=lambda g: seed_for(8, g))
    n = max(1, int(round(fraction * len(groups)))) if len(groups) > 1 else 0
    chosen = set(groups[:n])
    return {k for k in keys if _group(Path(k).stem) in chosen}


def load_mono(path: Path, rate: int) -> list[np.ndarray]:
    """Each channel of ``path`` at ``rate`` as float32 (samples,)."""
    audio, sr = read_audio(path)
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if sr != rate:
        x = torchaudio.functional.resample(x, sr, rate)
    return [c.numpy().copy() for c in x]


def normalise_pair(degraded: np.ndarray, clean: np.ndarray, peak: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Scale both by the gain that brings the degraded crop's peak to ``peak``."""
    g = peak / max(float(np.abs(degraded).max()), 1e-4)
    return degraded * g, clean * g


class PairMaker:
    """Draws (degraded, clean) crops of ``segment`` samples from clips with a Degrader.

    Every data folder is drawn equally often (a small real corpus is not drowned by a
    large supplement); within a folder, clips are drawn in proportion to their length.
    """

    def __init__(self, clips: list[Clip], rate: int, segment: int, degrader: Callable[..., Any]):
        if not clips:
            raise UsageError("no clips to draw training examples from")
        self.clips, self.rate, self.segment, self.degrader = clips, rate, segment, degrader
        # each data folder gets an equal share; within a folder, clips by length
        lengths = np.array([max(len(c.audio), 1) for c in clips], dtype=np.float64)
        folders = [c.folder for c in clips]
        per_folder = {f: sum(l for l, g in zip(lengths, folders) if g == f) for f in set(folders)}
        self.p = np.array([l / per_folder[f] for l, f in zip(lengths, folders)]) / len(per_folder)
        self.p /= self.p.sum()

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        x = np.zeros(self.segment, np.float32)
        for _ in range(20):
            clip = self.clips[rng.choice(len(self.clips), p=self.p)].audio
            if len(clip) <= self.segment:
                off = rng.integers(0, self.segment - len(clip) + 1)
                x = np.zeros(self.segment, np.float32)
                x[off:off + len(clip)] = clip
            else:
                start = rng.integers(0, len(clip) - self.segment + 1)
                x = clip[start:start + self.segment].copy()
            peak = float(np.abs(x).max())
            if peak > 0 and np.sqrt(np.mean(x ** 2)) / peak > MIN_RMS * 10:
                break
        # random level: the restorer sees quiet and loud material
        x = x / max(float(np.abs(x).max()), 1e-6) * float(rng.uniform(0.1, 0.9))
        return x.astype(np.float32)

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        clean = self.crop(rng)
        degraded, _labels = self.degrader(clean[None], self.rate, rng)
        degraded = np.asarray(degraded, np.float32)[0]
        if not np.all(np.isfinite(degraded)):
            degraded = np.nan_to_num(degraded)
        return normalise_pair(degraded, clean)

    def batch(self, rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair(rng) for _ in range(n)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
        y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
        return x, y


class MixedDegrader:
    """The recipe drawn with the given folders, or (with probability ``synthetic_share``)
    with synthetic impulse responses instead of the IR folder: a handful of measured IRs
    alone would teach the model only those rooms."""

    def __init__(self, cfg: TrainConfig, synthetic_share: float = 0.5):
        from archtool.degrade import Degrader

        self.real = Degrader(cfg.recipe, noise_dir=cfg.noise_dir, rir_dir=cfg.rir_dir,
                             background_dir=cfg.background_dir)
        self.synthetic = (Degrader(cfg.recipe, noise_dir=cfg.noise_dir, rir_dir=None,
                                   background_dir=cfg.background_dir) if cfg.rir_dir else None)
        self.synthetic_share = synthetic_share

    def __call__(self, clean: np.ndarray, sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        use_synthetic = self.synthetic is not None and rng.random() < self.synthetic_share
        return (self.synthetic if use_synthetic else self.real)(clean, sample_rate, rng)


_PREFETCH: tuple[PairMaker, int, int] | None = None  # (pairs, seed, batch) in a prefetch worker


def _prefetch_init(pairs: PairMaker, seed: int, batch: int) -> None:
    global _PREFETCH
    torch.set_num_threads(1)
    _PREFETCH = (pairs, seed, batch)


def _prefetch_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    pairs, seed, batch = _PREFETCH
    x, y = pairs.batch(rng_for(seed, f"step{step}"), batch)
    return x.numpy(), y.numpy()


class BatchPrefetcher:
    """Makes the batches of steps ``start, start+1, ...`` in ``workers`` processes, in order.

    A batch depends only on (seed, step), so prefetching in parallel gives exactly the
    batches the serial loop would: a GPU is then fed by all CPU cores instead of one.
    """

    def __init__(self, pairs: PairMaker, seed: int, batch: int, workers: int, start: int, stop: int):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self.pool = ctx.Pool(workers, initializer=_prefetch_init, initargs=(pairs, seed, batch))
        self.results = self.pool.imap(_prefetch_batch, range(start, stop), chunksize=1)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next(self.results)
        return torch.from_numpy(x), torch.from_numpy(y)

    def close(self) -> None:
        self.pool.terminate()
        self.pool.join()


def make_degrader(cfg: TrainConfig) -> Callable[..., Any]:
    """The on-the-fly degradation of clean crops (archtool.degrade's recipe API)."""
    return MixedDegrader(cfg)


@torch.no_grad()
def evaluate(gen: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 16) -> dict[str, float]:
    """Mean SDR / SI-SDR of input and output against the clean target, in dB."""
    gen.eval()
    out = torch.cat([gen(x[i:i + batch]) for i in range(0, len(x), batch)])
    gen.train()
    sdr_in, sdr_out = sdr_db(x[:, 0], y[:, 0]), sdr_db(out[:, 0], y[:, 0])
    si_in, si_out = si_sdr_db(x[:, 0], y[:, 0]), si_sdr_db(out[:, 0], y[:, 0])
    return {"sdr_in_db": float(sdr_in.mean()), "sdr_out_db": float(sdr_out.mean()),
            "sdr_improvement_db": float((sdr_out - sdr_in).mean()),
            "si_sdr_improvement_db": float((si_out - si_in).mean()), "items": int(len(x))}


class OpGANTrainer:
    """Holds the data, both networks, their optimisers, and the run's history."""

    def __init__(self, cfg: TrainConfig, degrader: Callable[..., Any] | None = None,
                 progress: bool = True):
        self.cfg = cfg
        torch.set_num_threads(max(1, cfg.threads))
        self.device = torch.device(cfg.device)
        self.progress = progress
        files = scan_clean(cfg.data)
        held = split_holdout([k for _, k, _ in files], cfg.holdout, cfg.holdout_fraction)
        self.train_clips: list[Clip] = []
        self.val_clips: list[Clip] = []
        self.sources: list[dict[str, str]] = []
        for path, key, row in files:
            chans = load_mono(path, cfg.rate)
            clips = [Clip(f"{key}#{i}", row.get("source", str(path)), c) for i, c in enumerate(chans)]
            (self.val_clips if key in held else self.train_clips).extend(clips)
            self.sources.append({"file": key, "source": row.get("source", "unknown"),
                                 "licence": row.get("licence", "unknown"),
                                 "split": "holdout" if key in held else "train"})
        if not self.train_clips:
            raise UsageError("every clip was held out; pass fewer --holdout patterns")
        self.degrader = degrader if degrader is not None else make_degrader(cfg)
        self.train_pairs = PairMaker(self.train_clips, cfg.rate, cfg.segment, self.degrader)
        torch.manual_seed(seed_for(cfg.seed, "init") % (2 ** 31))
        self.gen = OpGANGenerator(cfg.width, cfg.depth, cfg.q, cfg.residual, cfg.max_mult).to(self.device)
        self.disc = OpGANDiscriminator(cfg.disc_width, cfg.q).to(self.device)
        if cfg.init:
            self._load_init(Path(cfg.init))
        self.opt_g = torch.optim.Adam(self.gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        self.stft = MultiResolutionSTFTLoss()
        self.step = 0
        self.best_sdr = -math.inf
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        val_src = self.val_clips or self.train_clips
        val_rng = rng_for(cfg.seed, "val")
        self.val_x, self.val_y = PairMaker(val_src, cfg.rate, cfg.segment, self.degrader).batch(
            val_rng, cfg.val_items)
        self.val_x, self.val_y = self.val_x.to(self.device), self.val_y.to(self.device)

    def _load_init(self, path: Path) -> None:
        """Start the generator from a checkpoint (weights only) of the same architecture."""
        state, meta = load_checkpoint(path)
        if meta.get("model") != "opgan" or dict(meta.get("arch", {})) != dict(self.gen.config):
            raise UsageError(f"{path}: generator {meta.get('arch')} differs from this run's {dict(self.gen.config)} "
                             "(pass the same --width, --depth, --max-mult and --q)")
        self.gen.load_state_dict(state)

    # -- persistence -------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return Path(self.cfg.output).with_suffix(".state.pt")

    def save_state(self) -> None:
        blob = {"gen": self.gen.state_dict(), "disc": self.disc.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "step": self.step, "best_sdr": self.best_sdr, "train_seconds": self.train_seconds,
                "history": [list(h.values()) for h in self.history],
                "history_keys": list(self.history[0].keys()) if self.history else []}
        tmp = self.state_path.with_name(f".{self.state_path.name}.tmp{os.getpid()}")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, tmp)
        os.replace(tmp, self.state_path)

    def load_state(self) -> bool:
        """Resume from ``OUTPUT.state.pt`` when it exists; returns whether it did."""
        if not self.state_path.exists():
            return False
        blob = torch.load(self.state_path, map_location=self.device, weights_only=True)
        self.gen.load_state_dict(blob["gen"])
        self.disc.load_state_dict(blob["disc"])
        self.opt_g.load_state_dict(blob["opt_g"])
        self.opt_d.load_state_dict(blob["opt_d"])
        self.step, self.best_sdr = int(blob["step"]), float(blob["best_sdr"])
        self.train_seconds = float(blob.get("train_seconds", 0.0))
        keys = blob.get("history_keys", [])
        self.history = [dict(zip(keys, row)) for row in blob.get("history", [])]
        return True

    def metadata(self, metrics: dict[str, float]) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "model": "opgan",
            "arch": dict(self.gen.config),
            "discriminator": {"width": cfg.disc_width, "q": cfg.q},
            "q": cfg.q,
            "sample_rate": cfg.rate,
            "segment": cfg.segment,
            "parameters": count_parameters(self.gen),
            "steps": self.step,
            "train_seconds": round(self.train_seconds, 1),
            "training": {k: v for k, v in asdict(cfg).items()
                         if k not in ("data", "output", "holdout")},
            "losses": {"l1": cfg.w_l1, "mr_stft": cfg.w_stft, "adversarial_lsgan": cfg.w_adv,
                       "adversarial_from_step": cfg.adv_start},
            "data": {"dirs": [str(d) for d in cfg.data], "recipe": cfg.recipe,
                     "noise_dir": cfg.noise_dir, "rir_dir": cfg.rir_dir,
                     "background_dir": cfg.background_dir, "files": self.sources,
                     "holdout": sorted({s["file"] for s in self.sources if s["split"] == "holdout"})},
            "validation": metrics,
            "history": self.history,
        }

    # -- training ----------------------------------------------------------------------
    def train_step(self, prefetch: BatchPrefetcher | None = None) -> dict[str, float]:
        cfg = self.cfg
        if prefetch is not None:
            x, y = prefetch.next()
        else:
            x, y = self.train_pairs.batch(rng_for(cfg.seed, f"step{self.step}"), cfg.batch)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        adv = cfg.w_adv > 0 and self.step >= cfg.adv_start
        out = self.gen(x)
        l1 = (out - y).abs().mean()
        spec = self.stft(out[:, 0], y[:, 0])
        loss = cfg.w_l1 * l1 + cfg.w_stft * spec
        g_adv = torch.zeros(())
        if adv:
            g_adv = lsgan_generator_loss(self.disc(out))
            loss = loss + cfg.w_adv * g_adv
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.gen.parameters(), cfg.grad_clip)
        self.opt_g.step()
        d_loss = torch.zeros(())
        if adv:
            d_loss = lsgan_discriminator_loss(self.disc(y), self.disc(out.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), cfg.grad_clip)
            self.opt_d.step()
        self.step += 1
        return {"loss": loss.item(), "l1": l1.item(), "stft": spec.item(), "g_adv": g_adv.item(),
                "d": d_loss.item()}

    def validate_and_save(self, last: dict[str, float]) -> dict[str, float]:
        metrics = evaluate(self.gen, self.val_x, self.val_y)
        record = {"step": float(self.step), "train_seconds": round(self.train_seconds, 1),
                  "loss": round(last.get("loss", float("nan")), 4),
                  "val_sdr_improvement_db": round(metrics["sdr_improvement_db"], 3),
                  "val_si_sdr_improvement_db": round(metrics["si_sdr_improvement_db"], 3)}
        self.history.append(record)
        if metrics["sdr_improvement_db"] > self.best_sdr:
            self.best_sdr = metrics["sdr_improvement_db"]
            save_checkpoint(self.cfg.output, self.gen.state_dict(),
                            self.metadata(metrics | {"on": "holdout" if self.val_clips else "train clips"}))
        self.save_state()
        return metrics

    def run(self, steps: int | None = None, log: Callable[[str], None] | None = None) -> dict[str, float]:
        """Train until ``steps`` total steps (default ``cfg.steps``); returns the last metrics."""
        from tqdm import tqdm

        total = self.cfg.steps if steps is None else steps
        bar = tqdm(total=total, initial=self.step, disable=not self.progress, mininterval=20,
                   desc="opgan", dynamic_ncols=False, ncols=120)
        prefetch = (BatchPrefetcher(self.train_pairs, self.cfg.seed, self.cfg.batch, self.cfg.workers,
                                    self.step, total) if self.cfg.workers > 0 and self.step < total else None)
        try:
            metrics = self._loop(total, bar, prefetch, log)
        finally:
            if prefetch is not None:
                prefetch.close()
        bar.close()
        return metrics

    def _loop(self, total: int, bar: Any, prefetch: BatchPrefetcher | None,
              log: Callable[[str], None] | None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        last: dict[str, float] = {}
        val_text = ""
        started = time.perf_counter()
        while self.step < total:
            t0 = time.perf_counter()
            last = self.train_step(prefetch)
            self.train_seconds += time.perf_counter() - t0
            bar.update(1)
            out_of_time = self.cfg.time_limit_s > 0 and time.perf_counter() - started > self.cfg.time_limit_s
            if self.step % self.cfg.val_every == 0 or self.step == total or out_of_time:
                metrics = self.validate_and_save(last)
                val_text = f"{metrics['sdr_improvement_db']:+.2f}"
                if log:
                    log(f"step {self.step} loss {last['loss']:.3f} val dSDR {val_text} dB "
                        f"dSI-SDR {metrics['si_sdr_improvement_db']:+.2f} dB "
                        f"({self.train_seconds:.0f} s)")
            bar.set_postfix(loss=f"{last['loss']:.3f}", l1=f"{last['l1']:.4f}",
                            stft=f"{last['stft']:.3f}", d=f"{last['d']:.3f}", val_dSDR=val_text,
                            refresh=False)
            if out_of_time:
                if log:
                    log(f"time limit of {self.cfg.time_limit_s:.0f} s reached at step {self.step}")
                break
        return metrics


def train(cfg: TrainConfig, resume: bool = False, degrader: Callable[..., Any] | None = None,
          progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Run a whole training (resuming from ``OUTPUT.state.pt`` when ``resume``)."""
    trainer = OpGANTrainer(cfg, degrader=degrader, progress=progress)
    if resume and trainer.load_state() and log:
        log(f"resumed at step {trainer.step}")
    return trainer.run(log=log)
