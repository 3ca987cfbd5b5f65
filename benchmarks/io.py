"""Throughput and peak memory of decode + loudness + encode, against ffmpeg's two-pass loudnorm.

For 44.1 kHz stereo 24-bit FLAC files of 10 and 60 minutes (synthetic programme made here),
this runs in the same session:
  * ``archtool restore FILE -o OUT --preset none --no-html`` (decode, BS.1770 measure, gain/limiter,
    encode, checksums, sidecar; no HTML report, whose re-analysis of outputs is not I/O);
  * ffmpeg's two-pass ``loudnorm`` (pass 1 measures, pass 2 applies in linear mode, output rate
    forced to the input's), encoding the same 24-bit FLAC.
It reports times real time and the peak resident memory of each whole process tree (Python plus
its ffmpeg children), sampled every 20 ms. Usage: python benchmarks/io.py [--minutes 10 60]
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
from scipy import signal

from archtool.audio.ffmpeg import ffmpeg_executable
from archtool.audio.io import BlockWriter, OutputSpec

WORK = Path(__file__).resolve().parent / "_work" / "io"
RATE = 44100


def make_programme(path: Path, minutes: float, seed: int = 0) -> None:
    """Music-like stereo: pink-ish noise bed with slow level changes and tonal chords, 24-bit FLAC."""
    if path.exists():
        return
    rng = np.random.default_rng(seed)
    b, a = signal.butter(2, [80, 6000], btype="band", fs=RATE)
    zi = np.zeros((2, max(len(a), len(b)) - 1))
    block = RATE * 10
    total = int(minutes * 60 * RATE)
    with BlockWriter(path, RATE, 2, OutputSpec("flac", 24)) as w:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / RATE
            noise, zi = signal.lfilter(b, a, rng.standard_normal((2, n)) * 0.05, axis=1, zi=zi)
            chord = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
            level = 0.6 + 0.4 * np.sin(2 * np.pi * t / 37.0)
            w.write((noise + chord[None]) * level[None])


def run_measured(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB) of ``cmd`` and all its children."""
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc] + proc.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    return wall, peak / 1e6, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def bench_archtool(src: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "archtool", "restore", str(src), "-o", str(out), "--preset", "none",
           "--no-resume", "--jobs", "1", "--no-html"]
    wall, peak, res = run_measured(cmd)
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    report = json.loads((out / "report.json").read_text())["files"][0]
    return {"wall_s": wall, "peak_mb": peak, "loudness_after": report["loudness_after_lufs"],
            "true_peak_after": report["true_peak_after_dbtp"]}


def bench_ffmpeg_loudnorm(src: Path, out: Path) -> dict:
    ff = ffmpeg_executable()
    spec = "I=-23:TP=-1:LRA=50"
    w1, p1, r1 = run_measured([ff, "-hide_banner", "-nostdin", "-i", str(src), "-af",
                               f"loudnorm={spec}:print_format=json", "-f", "null", "-"])
    m = json.loads(re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", r1.stderr, re.S).group(0))
    filt = (f"loudnorm={spec}:measured_I={m['input_i']}:measured_TP={m['input_tp']}:"
            f"measured_LRA={m['input_lra']}:measured_thresh={m['input_thresh']}:offset={m['target_offset']}:"
            "linear=true:print_format=json")
    out.parent.mkdir(parents=True, exist_ok=True)
    w2, p2, r2 = run_measured([ff, "-hide_banner", "-nostdin", "-y", "-i", str(src), "-af", filt, "-ar", str(RATE),
                               "-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24", str(out)])
    if r2.returncode != 0:
        raise RuntimeError(r2.stderr[-2000:])
    m2 = json.loads(re.search(r"\{[^{}]*\"output_i\"[^{}]*\}", r2.stderr, re.S).group(0))
    return {"wall_s": w1 + w2, "peak_mb": max(p1, p2), "loudness_after": float(m2["output_i"]),
            "normalization_type": m2.get("normalization_type")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in args.minutes:
        src = WORK / f"programme_{minutes:g}min.flac"
        make_programme(src, minutes)
        ours = bench_archtool(src, WORK / f"out_archtool_{minutes:g}")
        ref = bench_ffmpeg_loudnorm(src, WORK / f"out_ffmpeg_{minutes:g}" / src.name)
        dur = minutes * 60
        rows.append({"minutes": minutes, "archtool_xrt": dur / ours["wall_s"], "archtool_peak_mb": ours["peak_mb"],
                     "archtool_lufs": ours["loudness_after"], "archtool_dbtp": ours["true_peak_after"],
                     "ffmpeg_xrt": dur / ref["wall_s"], "ffmpeg_peak_mb": ref["peak_mb"],
                     "ffmpeg_lufs": ref["loudness_after"], "ffmpeg_mode": ref["normalization_type"]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\nmachine: {platform.machine()}, {psutil.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.python_version()}, load avg {psutil.getloadavg()}")
    print("| file | archtool x RT | archtool peak MB | ffmpeg 2-pass x RT | ffmpeg peak MB | ratio | LUFS out (ours / ffmpeg) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} min 44.1 kHz stereo 24-bit | {r['archtool_xrt']:.0f}x | {r['archtool_peak_mb']:.0f} | "
              f"{r['ffmpeg_xrt']:.0f}x | {r['ffmpeg_peak_mb']:.0f} | {r['archtool_xrt'] / r['ffmpeg_xrt']:.2f} | "
              f"{r['archtool_lufs']:.2f} / {r['ffmpeg_lufs']:.2f} ({r['ffmpeg_mode']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
