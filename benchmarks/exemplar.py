"""Exemplar (copy) gap fills on music that repeats: how `auto`'s copy thresholds were chosen.

For each set of music (``--set NAME=DIR``, options below), gaps of 25-400 ms are cut at seeded
positions (the gap protocol of ``benchmarks/inpaint.py``) and filled by the single methods
(zero, linear, Janssen AR, the U-Net, the U-Net with plain Griffin-Lim: ``benchmarks/inpaint.py``'s
``fill_methods``, which also gives ``auto`` as shipped), by ``auto`` without copies (``inpaint(..., copies=False)``) and by the copy of the best match
(:func:`archtool.dsp.exemplar.find_exemplar`, cross-faded from the Janssen fill over 10 ms).
Each gap records the similarity of the match (the worse of its two contexts).

It then counts, for thresholds per length band (<= 50 ms, 100 ms, 200-400 ms; 0.75-0.95 or
off), the measures (gap SNR, LSD, patch PSNR; per set and length) where "copy if similar
enough, else ``auto``" is at least as good as the best single method, and prints the best
combinations and the shipped thresholds' count. None of the benchmark's held-out clips may be
used here: the sets default to the training clips of ../shared/data/music.

Set options (comma-separated after the folder): ``split=train|val|all`` (``archtool train
inpaint``'s split: every 5th file of the sorted folder is validation), ``every=K`` (every
K-th file), ``positions=P`` (gaps per clip and length, default 9), ``excerpt=S@T`` (an S s
excerpt from T s into each file, when it is long enough).

Usage (the 2026-11-24 choice; /work/extra_data is the game music gathered for training):
``python benchmarks/exemplar.py --set shared=../shared/data/music
--set extra=/work/extra_data/music,every=3,positions=3,excerpt=8@30
--set extraval=/work/extra_data/music,split=val,positions=3,excerpt=8@30 --json out.json``
(about 25 CPU minutes).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from archtool.dsp.exemplar import exemplar_fill, find_exemplar  # noqa: E402
from archtool.dsp.janssen import ar_fill  # noqa: E402
from archtool.models.checkpoint import PACKAGED_DIR  # noqa: E402
from archtool.restore.inpaint import (EXEMPLAR_RAMP_MS, EXEMPLAR_SIMILARITY, PACKAGED_MODELS, UNetFiller,  # noqa: E402
                                      ar_order_bounded, inpaint, ramp_blend)
from archtool.seeding import rng_for  # noqa: E402
from archtool.train.inpaint import list_audio, split_files  # noqa: E402
from inpaint import fill_methods, load_mono, measure, pick_positions  # noqa: E402  (benchmarks/inpaint.py)

RATE = 22050
LENGTHS_MS = (25, 50, 100, 200, 400)
SINGLES = ("zero", "linear", "ar", "unet", "unet_plain_gl")
MEASURES = (("snr_db", 1.0), ("lsd", -1.0), ("patch_psnr_db", 1.0))
SCALE = {"snr_db": 1.0, "lsd": 10.0, "patch_psnr_db": 1.0}  # shortfall units, as benchmarks/inpaint.py
THRESHOLDS = (0.75, 0.8, 0.85, 0.9, 0.95, float("inf"))  # inf: never copy


def parse_set(spec: str) -> dict:
    """``NAME=DIR[,key=value...]`` -> the set's settings."""
    name, _, rest = spec.partition("=")
    folder, *opts = rest.split(",")
    out = {"name": name, "dir": Path(folder), "split": "train", "every": 1, "positions": 9, "excerpt": None}
    for o in opts:
        k, _, v = o.partition("=")
        if k == "excerpt":
            length, _, at = v.partition("@")
            out[k] = (float(length), float(at or 0))
        elif k in ("every", "positions"):
            out[k] = int(v)
        elif k == "split":
            out[k] = v
        else:
            raise SystemExit(f"--set {spec}: unknown option {k!r}")
    return out


def load_set(cfg: dict) -> dict[str, np.ndarray]:
    files = list_audio(cfg["dir"])
    if cfg["split"] != "all":
        files = split_files(files, 5)[0 if cfg["split"] == "train" else 1]
    clips = {}
    for f in files[::cfg["every"]]:
        x = load_mono(f, RATE)
        if cfg["excerpt"]:
            length, at = (int(v * RATE) for v in cfg["excerpt"])
            if x.shape[0] < at + length:
                continue
            x = x[at:at + length]
        clips[str(f.relative_to(cfg["dir"]))] = x
    return clips


def gap_rows(name: str, clips: dict[str, np.ndarray], positions: int, filler: UNetFiller) -> list[dict]:
    rows = []
    ramp = int(round(EXEMPLAR_RAMP_MS * RATE / 1000))
    for ms in LENGTHS_MS:
        gap = int(round(ms * RATE / 1000))
        for clip, x in clips.items():
            for s in pick_positions(x, RATE, gap, positions, rng_for(3, f"extune/music/{clip}/{ms}")):
                e = s + gap
                # the single methods (and ``combined``: auto as shipped) as the held-out benchmark fills them
                fills = fill_methods(x, s, e, RATE, filler)
                d = fills["zero"]
                base, _ = inpaint(d[None].astype(np.float32), RATE, [[s / RATE, e / RATE]], filler=filler,
                                  copies=False)
                fills["auto_no_copies"] = base[0].astype(np.float64)
                row = {"set": name, "clip": clip, "ms": ms}
                match = find_exemplar(d, s, e, RATE)
                if match is not None:
                    row["similarity"] = min(match.similarity_before, match.similarity_after)
                    janssen = ar_fill(d, s, e, RATE, order=ar_order_bounded(gap, RATE))
                    fills["copy"] = d.copy()
                    fills["copy"][s:e] = ramp_blend(janssen, exemplar_fill(d, s, e, match), ramp)
                for m, y in fills.items():
                    row[m] = measure(x, y, s, e, RATE)
                rows.append(row)
        print(f"{name} {ms} ms: {sum(r['ms'] == ms for r in rows)} gaps", flush=True)
    return rows


def count(rows: list[dict], threshold_for) -> tuple[int, float]:
    """Measures met (and the summed shortfall) by "copy if similar enough, else auto"."""
    met, shortfall = 0, 0.0
    for name in sorted({r["set"] for r in rows}):
        for ms in LENGTHS_MS:
            rs = [r for r in rows if r["set"] == name and r["ms"] == ms]
            if not rs:
                continue
            th = threshold_for(ms)
            pick = [r["copy"] if r.get("similarity", -1.0) >= th else r["auto_no_copies"] for r in rs]
            for k, sign in MEASURES:
                best = max(sign * np.mean([r[m][k] for r in rs]) for m in SINGLES)
                margin = sign * float(np.mean([p[k] for p in pick])) - best
                met += margin >= 0
                shortfall += min(margin, 0.0) * SCALE[k]
    return met, shortfall


def banded(short: float, mid: float, long: float):
    return lambda ms: short if ms <= 50 else (mid if ms <= 100 else long)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=None, help="NAME=DIR[,split=,every=,positions=,excerpt=S@T]")
    ap.add_argument("--music-ckpt", type=Path, default=PACKAGED_DIR / PACKAGED_MODELS["music22k"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    sets = [parse_set(s) for s in (args.set or [f"shared={ROOT.parent / 'shared' / 'data' / 'music'}"])]
    filler = UNetFiller.load(args.music_ckpt)
    rows: list[dict] = []
    for cfg in sets:
        rows += gap_rows(cfg["name"], load_set(cfg), cfg["positions"], filler)
    total = 3 * sum(len({r["ms"] for r in rows if r["set"] == c["name"]}) for c in sets)
    grid = sorted(((count(rows, banded(a, b, c)), (a, b, c)) for a, b, c in itertools.product(THRESHOLDS, repeat=3)),
                  key=lambda t: (-t[0][0], -t[0][1]))
    shipped = count(rows, lambda ms: next(t for bound, t in EXEMPLAR_SIMILARITY if ms <= bound))
    print(f"measures met of {total}: no copies {count(rows, lambda ms: float('inf'))[0]}, "
          f"shipped thresholds {EXEMPLAR_SIMILARITY}: {shipped[0]} (shortfall {shipped[1]:.3f})")
    for (met, short), ths in grid[:8]:
        print(f"  <=50 / 100 / 200-400 ms thresholds {ths}: {met} (shortfall {short:.3f})")
    for name in sorted({r["set"] for r in rows}):
        for ms in LENGTHS_MS:
            fired = [r for r in rows if r["set"] == name and r["ms"] == ms
                     and r.get("similarity", -1.0) >= next(t for b, t in EXEMPLAR_SIMILARITY if ms <= b)]
            if fired:
                cell = lambda m: "/".join(f"{np.mean([r[m][k] for r in fired]):.2f}" for k, _ in MEASURES)  # noqa: E731
                print(f"  {name} {ms} ms, {len(fired)} copied: ar {cell('ar')}, auto without copies "
                      f"{cell('auto_no_copies')}, copy {cell('copy')}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "time_s": round(time.time() - t0, 1)}, default=float))
    print(f"done in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
