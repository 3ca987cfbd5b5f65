"""Op-GAN benchmark: a `rar` corpus from clips held out of training, restored by the shipped
Op-GAN checkpoints and by the peers that run here, scored in the same run.

    python benchmarks/opgan.py [--items 200] [--seed 0] [--json out.json]

For each material (speech 16 kHz, music 22.05 kHz) the clips listed as ``holdout`` in the
checkpoint's metadata are cut into ``--items`` random excerpts of 32000 samples (the
TIMIT-RAR / GTZAN-RAR length), each degraded with the ``rar`` recipe (random blend of white
noise, background mixture and reverberation, or a single artefact) using the shared
background and impulse-response folders. Reported per method: mean SDR improvement,
SI-SDR improvement (dB, output minus input) and LSD (dB, output), and speed in x real
time on this machine, for the Op-GAN checkpoint alone and, when a fusion stage trained for
it lies beside it (``<stem>_fusion.pt``, `archtool train opgan-fusion`), for Op-GAN + fusion
(what the ``opgan`` restorer runs by default). Peers: noisereduce (PyPI), ffmpeg ``afftdn`` (bundled ffmpeg), and
the DSP denoiser (registry ``denoise``) when installed. Paper anchors (Op-GAN, arXiv
2212.14618): +7.2 dB SDR on TIMIT-RAR, +4.9 dB on GTZAN-RAR.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archtool.audio.ffmpeg import ffmpeg_executable  # noqa: E402
from archtool.degrade import Degrader  # noqa: E402
from archtool.metrics import lsd_db, sdr_db, si_sdr_db  # noqa: E402
from archtool.models.checkpoint import PACKAGED_DIR, load_checkpoint  # noqa: E402
from archtool.seeding import rng_for  # noqa: E402
from archtool.train.opgan import load_mono  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
ITEM_SAMPLES = 32000
ANCHORS = {"speech": 7.2, "music": 4.9}
MATERIALS = {"speech": ("opgan_speech16k.pt", 16000), "music": ("opgan_music22k.pt", 22050)}

Method = Callable[[np.ndarray, int], np.ndarray]


def holdout_clips(meta: dict, rate: int) -> list[np.ndarray]:
    """Mono clips (each channel) of the files the checkpoint held out of training."""
    dirs = {Path(d).name: Path(d) for d in meta["data"]["dirs"]}
    clips = []
    for key in meta["data"]["holdout"]:
        folder, rel = key.split("/", 1)
        base = dirs.get(folder, SHARED / folder)
        clips.extend(load_mono(base / rel, rate))
    return clips


def build_corpus(clips: list[np.ndarray], rate: int, items: int, seed: int, material: str) -> list[dict]:
    """``items`` (clean, degraded) excerpts of ITEM_SAMPLES, degraded with the rar recipe."""
    deg = Degrader("rar", rir_dir=SHARED / "rir", background_dir=SHARED / "background")
    lengths = np.array([len(c) for c in clips], float)
    corpus = []
    i = 0
    while len(corpus) < items:
        rng = rng_for(seed, f"{material}/{i}")
        i += 1
        clip = clips[rng.choice(len(clips), p=lengths / lengths.sum())]
        if len(clip) <= ITEM_SAMPLES:
            clean = np.pad(clip, (0, ITEM_SAMPLES - len(clip)))
        else:
            start = int(rng.integers(0, len(clip) - ITEM_SAMPLES + 1))
            clean = clip[start:start + ITEM_SAMPLES]
        if np.sqrt(np.mean(clean ** 2)) < 1e-3:
            continue
        clean = (clean / np.abs(clean).max() * rng.uniform(0.2, 0.9)).astype(np.float32)
        degraded, labels = deg(clean[None], rate, rng)
        corpus.append({"clean": clean, "degraded": degraded[0].astype(np.float32),
                       "variant": labels["variant"]})
    return corpus


def opgan_method(path: Path, fusion: str = "off") -> Method:
    """The opgan restorer at the model's rate: Op-GAN alone (``fusion="off"``) or followed by
    the checkpoint's fusion stage (``"auto"``)."""
    from archtool.restore.opgan import OpGANRestorer

    restorer = OpGANRestorer(checkpoint=str(path))

    def run(x: np.ndarray, rate: int) -> np.ndarray:
        y = restorer.process(torch.from_numpy(x[None]), rate, {"high_band": "keep", "fusion": fusion}, "cpu")
        return y[0].numpy()

    return run


def noisereduce_method() -> Method | None:
    try:
        import noisereduce
    except ImportError:
        return None
    return lambda x, rate: noisereduce.reduce_noise(y=x, sr=rate).astype(np.float32)


def afftdn_method(options: str = "tn=1") -> Method:
    """ffmpeg's afftdn; its constant latency (one analysis frame) is measured once per rate
    on a noise probe and removed, so the output is time-aligned with the input."""
    exe = ffmpeg_executable()
    delays: dict[int, int] = {}

    def raw(x: np.ndarray, rate: int) -> np.ndarray:
        cmd = [exe, "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
               "-af", f"afftdn={options}" if options else "afftdn", "-f", "f32le", "pipe:1"]
        out = subprocess.run(cmd, input=x.astype("<f4").tobytes(), capture_output=True, check=True).stdout
        return np.frombuffer(out, "<f4")

    def run(x: np.ndarray, rate: int) -> np.ndarray:
        if rate not in delays:
            probe = (np.random.default_rng(0).standard_normal(rate) * 0.1).astype(np.float32)
            y = raw(probe, rate)
            corr = np.correlate(y, probe, "full")
            delays[rate] = max(0, int(np.argmax(corr)) - (len(probe) - 1))
        d = delays[rate]
        y = raw(np.concatenate([x, np.zeros(d + rate // 10, np.float32)]), rate)[d:d + len(x)]
        return np.pad(y, (0, max(0, len(x) - len(y)))).astype(np.float32)

    return run


def denoise_method() -> Method | None:
    from archtool.restore.registry import get_restorer, list_restorers

    if "denoise" not in list_restorers():
        return None
    r = get_restorer("denoise")
    return lambda x, rate: r.process(torch.from_numpy(x[None]), rate, {"seed": 0}, "cpu")[0].numpy()


def score(corpus: list[dict], method: Method, rate: int) -> dict:
    d_sdr, d_si, lsd, lsd_in = [], [], [], []
    seconds = cpu = 0.0
    for item in corpus:
        t0, c0 = time.perf_counter(), time.process_time()
        y = method(item["degraded"], rate)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        c, x = item["clean"], item["degraded"]
        d_sdr.append(sdr_db(c, y) - sdr_db(c, x))
        d_si.append(si_sdr_db(c, y) - si_sdr_db(c, x))
        lsd.append(lsd_db(c, y))
        lsd_in.append(lsd_db(c, x))
    audio_s = len(corpus) * ITEM_SAMPLES / rate
    return {"sdr_improvement_db": float(np.mean(d_sdr)), "si_sdr_improvement_db": float(np.mean(d_si)),
            "lsd_db": float(np.mean(lsd)), "lsd_input_db": float(np.mean(lsd_in)),
            "x_realtime": audio_s / max(seconds, 1e-9),
            "x_realtime_cpu": audio_s / max(cpu, 1e-9),  # per CPU-second of this process (ffmpeg runs in a child)
            "items": len(corpus),
            "sdr_improvement_by_variant": {v: float(np.mean([d for d, it in zip(d_sdr, corpus)
                                                             if it["variant"] == v]))
                                           for v in sorted({it["variant"] for it in corpus})}}


def long_signal_speed(path: Path, rate: int, seconds: float = 60.0, threads: int = 1,
                      fusion: str = "off") -> dict[str, float]:
    """x real time of the opgan restorer on one long mono signal (``threads`` torch threads):
    by wall clock (shared, loaded machine) and by this process's CPU time (what one
    otherwise idle core of this machine would need)."""
    from archtool.restore.opgan import OpGANRestorer

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r = OpGANRestorer(checkpoint=str(path))
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, int(seconds * rate))).astype(np.float32) * 0.1)
        r.process(x[:, :rate], rate, {"fusion": fusion}, "cpu")  # load + warm up
        t0, c0 = time.perf_counter(), time.process_time()
        r.process(x, rate, {"high_band": "keep", "fusion": fusion}, "cpu")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"wall": seconds / wall, "cpu": seconds / cpu * threads}
    finally:
        torch.set_num_threads(old)


def _print_speed(material: str, ckpt: Path, rate: int, has_fusion: bool, res: dict) -> dict:
    """Add the 60 s long-signal speeds (Op-GAN alone, and with its fusion stage) to ``res``."""
    res["opgan_long_signal_x_realtime"] = sp = long_signal_speed(ckpt, rate, threads=1)
    print(f"{material}: Op-GAN on a 60 s signal, 1 thread: {sp['wall']:.1f}x RT by wall clock "
          f"(shared machine), {sp['cpu']:.1f}x RT per CPU second", flush=True)
    if has_fusion:
        res["fusion_long_signal_x_realtime"] = sp = long_signal_speed(ckpt, rate, threads=1, fusion="auto")
        print(f"{material}: Op-GAN + fusion on a 60 s signal, 1 thread: {sp['wall']:.1f}x RT by wall clock, "
              f"{sp['cpu']:.1f}x RT per CPU second", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=200, help="excerpts per material")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-dir", type=Path, default=PACKAGED_DIR)
    ap.add_argument("--extra", action="append", default=[],
                    help="MATERIAL=PATH: another Op-GAN checkpoint to score (e.g. an ablation)")
    ap.add_argument("--materials", default="speech,music")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--speed-only", action="store_true",
                    help="only the 60 s long-signal speeds of the --checkpoint-dir checkpoints (no corpus, no scores)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {}
    for material in args.materials.split(","):
        name, rate = MATERIALS[material]
        ckpt = args.checkpoint_dir / name
        _, meta = load_checkpoint(ckpt)
        from archtool.restore.opgan import fusion_path

        has_fusion = fusion_path(ckpt).exists()
        if args.speed_only:
            results[material] = _print_speed(material, ckpt, rate, has_fusion, {})
            continue
        corpus = build_corpus(holdout_clips(meta, rate), rate, args.items, args.seed, material)
        methods: dict[str, Method | None] = {
            f"Op-GAN ({name}, q={meta['q']})": opgan_method(ckpt),
            f"Op-GAN + fusion ({fusion_path(ckpt).name})": opgan_method(ckpt, "auto") if has_fusion else None,
            "noisereduce": noisereduce_method(),
            "ffmpeg afftdn (tn=1)": afftdn_method("tn=1"),
            "ffmpeg afftdn (nr=30:nf=-25:tn=1)": afftdn_method("nr=30:nf=-25:tn=1"),
            "DSP denoise (archtool)": denoise_method(),
        }
        for extra in args.extra:
            mat, path = extra.split("=", 1)
            if mat == material:
                _, m2 = load_checkpoint(path)
                methods[f"Op-GAN ({Path(path).name}, q={m2['q']})"] = opgan_method(Path(path))
        res = {"rate": rate, "items": len(corpus), "holdout": meta["data"]["holdout"],
               "variants": {v: sum(it["variant"] == v for it in corpus) for v in sorted({it["variant"] for it in corpus})},
               "input_sdr_db": float(np.mean([sdr_db(it["clean"], it["degraded"]) for it in corpus])),
               "anchor_sdr_improvement_db": ANCHORS[material], "methods": {}}
        for label, method in methods.items():
            if method is None:
                continue
            res["methods"][label] = score(corpus, method, rate)
            m = res["methods"][label]
            print(f"{material:6s} {label:44s} dSDR {m['sdr_improvement_db']:+6.2f}  dSI-SDR "
                  f"{m['si_sdr_improvement_db']:+6.2f}  LSD {m['lsd_db']:5.2f} (in {m['lsd_input_db']:5.2f})  "
                  f"{m['x_realtime']:7.1f}x RT wall, {m['x_realtime_cpu']:7.1f}x RT cpu", flush=True)
        print(f"{material}: input SDR {res['input_sdr_db']:.2f} dB", flush=True)
        results[material] = _print_speed(material, ckpt, rate, has_fusion, res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
