"""Degrade throughput: the on-the-fly API (seconds of audio per second) and the CLI (clips per second).

    python benchmarks/degrade.py [--count 100] [--jobs 1 2] [--out benchmarks/_work/degrade]

Clean material: ../shared/data/speech and music (synthetic tones when absent). The API is
timed in this process (one core; wall time and CPU time, the latter including ffmpeg children) for every built-in recipe on 4 s clips at 16 kHz mono and,
for mixed-archive and rar, 44.1 kHz stereo, with the shared rir/ and background/ folders.
The CLI is timed end to end (process start, scan, decode, degrade, two encodes per clip,
labels) for ``mixed-archive`` with 4 s clips at 16 kHz; outputs of different --jobs are
compared byte for byte.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from archtool.degrade import Degrader, list_recipes  # noqa: E402


def clean_clips(rate: int, channels: int, seconds: float, n: int) -> list[np.ndarray]:
    """``n`` clean clips from shared/data (speech for mono, music for stereo) or synthetic tones."""
    from archtool.audio.io import read_audio
    from archtool.degrade.sources import resample

    folder = SHARED / ("speech" if channels == 1 else "music")
    clips: list[np.ndarray] = []
    files = sorted(folder.glob("*.flac")) if folder.is_dir() else []
    for f in files:
        x, sr = read_audio(f)
        x = resample(x, sr, rate)
        x = x[:channels] if x.shape[0] >= channels else np.repeat(x[:1], channels, axis=0)
        need = int(seconds * rate)
        if x.shape[1] < need:
            x = np.tile(x, (1, need // x.shape[1] + 1))
        clips.append(np.ascontiguousarray(x[:, :need], dtype=np.float32))
        if len(clips) == n:
            break
    t = np.arange(int(seconds * rate)) / rate
    while len(clips) < n:
        k = len(clips)
        tone = 0.3 * np.sin(2 * np.pi * (220 + 30 * k) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        clips.append(np.repeat(tone[None], channels, axis=0).astype(np.float32))
    return clips


def api_throughput(recipe: str, rate: int, channels: int, seconds: float = 4.0, n: int = 24) -> dict:
    folders = {}
    if SHARED.is_dir():
        folders = {"rir_dir": SHARED / "rir", "background_dir": SHARED / "background"}
    deg = Degrader(recipe, **folders)
    clips = clean_clips(rate, channels, seconds, 8)
    deg(clips[0], rate, np.random.default_rng(10_000))  # warm the source caches
    cpu0 = _cpu_seconds()
    start = time.perf_counter()
    for i in range(n):
        deg(clips[i % len(clips)], rate, np.random.default_rng(i))
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu0
    return {"recipe": recipe, "rate": rate, "channels": channels, "clip_s": seconds, "clips": n,
            "ms_per_clip": 1000 * elapsed / n, "audio_s_per_s": n * seconds / elapsed,
            "cpu_ms_per_clip": 1000 * cpu / n, "audio_s_per_cpu_s": n * seconds / cpu}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg for the codec unit)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cli_throughput(work: Path, count: int, jobs: int) -> dict:
    src = work / "clean_in"
    if not src.exists():
        src.mkdir(parents=True)
        if SHARED.is_dir():
            for sub in ("speech", "music"):
                shutil.copytree(SHARED / sub, src / sub)
        else:
            from archtool.audio.io import OutputSpec, write_audio

            for k, clip in enumerate(clean_clips(16000, 1, 8.0, 6)):
                write_audio(src / f"tone{k}.flac", clip, 16000, OutputSpec("flac", 24))
    out = work / f"out_jobs{jobs}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "archtool", "degrade", str(src), "-o", str(out), "--recipe", "mixed-archive",
           "--clip-seconds", "4", "--rate", "16000", "--count", str(count), "--jobs", str(jobs), "--seed", "1"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"CLI failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines = (out / "labels.jsonl").read_text().splitlines()
    assert len(lines) == count, len(lines)
    return {"jobs": jobs, "clips": count, "clip_s": 4.0, "wall_s": elapsed, "clips_per_s": count / elapsed,
            "out": str(out)}


def same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return fa == fb and all(filecmp.cmp(a / f, b / f, shallow=False) for f in fa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100, help="clips for the CLI run")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "degrade")
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
                    "load_avg_start": os.getloadavg(), "api": [], "cli": []}
    if not args.skip_api:
        for recipe in list_recipes():
            r = api_throughput(recipe, 16000, 1)
            report["api"].append(r)
            print(f"API {recipe:14s} 16 kHz mono   {r['ms_per_clip']:7.1f} ms/clip {r['audio_s_per_s']:7.1f} s/s"
                  f"  (CPU {r['cpu_ms_per_clip']:6.1f} ms/clip {r['audio_s_per_cpu_s']:7.1f} s/CPU-s)", flush=True)
        for recipe in ("mixed-archive", "rar"):
            r = api_throughput(recipe, 44100, 2, n=12)
            report["api"].append(r)
            print(f"API {recipe:14s} 44.1k stereo  {r['ms_per_clip']:7.1f} ms/clip {r['audio_s_per_s']:7.1f} s/s"
                  f"  (CPU {r['cpu_ms_per_clip']:6.1f} ms/clip {r['audio_s_per_cpu_s']:7.1f} s/CPU-s)", flush=True)
    for jobs in ([] if args.skip_cli else args.jobs):
        r = cli_throughput(args.out, args.count, jobs)
        report["cli"].append(r)
        print(f"CLI mixed-archive jobs={jobs}: {r['clips']} clips in {r['wall_s']:.1f} s = {r['clips_per_s']:.2f} clips/s",
              flush=True)
    if len(report["cli"]) >= 2:
        report["cli_identical_across_jobs"] = same_tree(Path(report["cli"][0]["out"]), Path(report["cli"][1]["out"]))
        print("identical bytes across --jobs:", report["cli_identical_across_jobs"])
    report["load_avg_end"] = os.getloadavg()
    (args.out / "degrade.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'degrade.json'}")


if __name__ == "__main__":
    main()
