"""Does a restorer's output depend on the engine's block size?

    python benchmarks/block_invariance.py [--rate 22050] [--block 3.7] [--restorers opgan,denoise]

The engine restores a file block by block, each block with the context its chain declares,
and promises that ``--block-seconds`` changes memory, not results (its settings hash, and so
``--resume``, ignores it; an out-of-memory retry uses smaller blocks). For every registered
restorer with its default parameters (Op-GAN: the music model), this runs ``--seconds`` of
``sample_data/orchestra_tape_hiss_clipped.flac`` (repeated, stereo, with 40 added clicks) through
engine blocks of ``--block`` seconds and in one pass, and prints whether the outputs are
bit-identical and the difference's energy relative to the output (dB). The figures go to
benchmarks/RESULTS.md ("Op-GAN", fifteenth session).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archtool.audio.io import read_audio  # noqa: E402
from archtool.engine.chunking import restore_in_blocks  # noqa: E402
from archtool.restore.base import Step  # noqa: E402
from archtool.restore.registry import list_restorers  # noqa: E402

SOURCE = ROOT / "sample_data" / "orchestra_tape_hiss_clipped.flac"
PARAMS = {"opgan": {"model": "music"}}


def test_signal(rate: int, seconds: float) -> np.ndarray:
    audio, sr = read_audio(SOURCE)
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    x = torchaudio.functional.resample(x, sr, rate).numpy()
    n = int(seconds * rate)
    x = np.tile(x, (1, -(-n // x.shape[1])))[:, :n]  # the excerpt repeated to ``seconds``
    if x.shape[0] == 1:
        x = np.concatenate([x, np.roll(x, 5, axis=1)])
    rng = np.random.default_rng(1)
    x[:, rng.integers(0, x.shape[1], 40)] += 0.5
    return x.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=int, default=22050)
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--block", type=float, default=3.7, help="engine block (s), against one pass")
    ap.add_argument("--restorers", default="", help="comma-separated (default: every registered one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = test_signal(args.rate, args.seconds)
    names = args.restorers.split(",") if args.restorers else list_restorers()
    print(f"{x.shape[1] / args.rate:.1f} s, {x.shape[0]} channels, {args.rate} Hz; blocks of {args.block} s "
          "against one pass")
    print("| restorer | bit-identical | difference (dB) | max abs | time (s) |\n|---|---|---|---|---|")
    for name in names:
        steps = [Step(name, dict(PARAMS.get(name, {})))]
        t = time.perf_counter()
        try:
            chunked = restore_in_blocks(x, args.rate, steps, args.block)
            whole = restore_in_blocks(x, args.rate, steps, 10 * args.seconds)
        except Exception as exc:  # a restorer that cannot run here (no checkpoint, ...)
            print(f"| {name} | - | {type(exc).__name__}: {exc} | - | - |")
            continue
        d = chunked.astype(np.float64) - whole
        ratio = 10 * np.log10(np.sum(d ** 2) / max(np.sum(whole.astype(np.float64) ** 2), 1e-30) + 1e-30)
        print(f"| {name} | {np.array_equal(chunked, whole)} | {ratio:.1f} | {np.abs(d).max():.2e} | "
              f"{time.perf_counter() - t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
