"""Speed of the neural restorers on a device: seconds of compute per second of audio.

Runs each restorer's ``process`` (the call `restore` makes per chunk, resampling and
overlap-add included) on a synthetic signal, once to warm up and then timed, on the
device given (``cpu`` with one torch thread, or ``cuda:N``). For issue 7's GPU figures,
issue 8's Op-GAN inference speed and issue 11's 10 / 25 / 50-step diffusion timings.

    python benchmarks/neural_speed.py --device cuda:0 --json speed_gpu.json
    python benchmarks/neural_speed.py --device cpu --seconds 20
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import traceback
from pathlib import Path

import numpy as np
import torch


def test_signal(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """Mono ``(1, N)``: a few drifting harmonic notes plus hiss (a busy, musical load)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    for f0 in (196.0, 261.6, 329.6, 440.0):
        vib = 1 + 0.003 * np.sin(2 * np.pi * 5 * t + rng.uniform(0, 6))
        for h in range(1, 8):
            if h * f0 < 0.45 * rate:
                x += 0.05 / h * np.sin(2 * np.pi * h * f0 * np.cumsum(vib) / rate)
    x += 0.01 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))[None]


# name, restorer, input rate, params
CASES: list[tuple[str, str, int, dict]] = [
    ("opgan speech 16 kHz", "opgan", 16000, {"model": "speech", "high_band": "keep"}),
    ("opgan music 22.05 kHz", "opgan", 22050, {"model": "music", "high_band": "keep"}),
    ("diffusion 10 steps", "diffusion", 22050, {"steps": 10, "snr_db": 15.0}),
    ("diffusion 25 steps", "diffusion", 22050, {"steps": 25, "snr_db": 15.0}),
    ("diffusion 50 steps", "diffusion", 22050, {"steps": 50, "snr_db": 15.0}),
    ("bwe music 44.1 kHz (cutoff 6 kHz)", "bwe", 44100, {"cutoff_hz": 6000.0, "content": "music"}),
    ("bwe speech 16 kHz (cutoff 4 kHz)", "bwe", 16000, {"cutoff_hz": 4000.0, "content": "speech"}),
    ("enhance phone 16 kHz", "enhance", 16000, {"cutoff_hz": 3400.0}),
]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(restorer: str, rate: int, params: dict, seconds: float, device: torch.device) -> dict:
    from archtool.restore.registry import get_restorer

    r = get_restorer(restorer)
    x = test_signal(seconds, rate)
    r.process(x, rate, dict(params), device)  # warm-up at the same shapes: model load, kernel autotuning
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    y = r.process(x, rate, dict(params), device)
    sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert y.shape == x.shape and bool(torch.isfinite(y).all())
    out = {"audio_s": seconds, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
           "s_per_audio_s": round(wall / seconds, 4), "x_realtime": round(seconds / wall, 1)}
    if device.type == "cuda":
        out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio per timed run")
    ap.add_argument("--diffusion-seconds", type=float, default=None,
                    help="audio per diffusion run (default: --seconds; diffusion is slow on a CPU)")
    ap.add_argument("--only", default="", help="comma list of substrings: run only matching cases")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    else:
        torch.backends.cudnn.benchmark = True
    info = {"device": str(device), "torch": torch.__version__, "machine": platform.machine(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    results = {}
    for name, restorer, rate, params in CASES:
        if args.only and not any(s.strip() in name for s in args.only.split(",")):
            continue
        seconds = args.diffusion_seconds if restorer == "diffusion" and args.diffusion_seconds else args.seconds
        try:
            results[name] = time_case(restorer, rate, params, seconds, device)
        except Exception as exc:  # one restorer's failure must not hide the others' figures
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name:40s} {results[name]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
