"""Accuracy and speed of `archtool analyze` on a labelled `mixed-archive` corpus.

1. Builds a corpus with ``archtool degrade --recipe mixed-archive`` from ../shared/data clean
   speech and music (copied to a temporary folder), with a seed never used for tuning.
2. Runs ``archtool analyze CORPUS/degraded -o REPORT`` and reads analysis.json.
3. Scores per kind precision / recall / F1 (label present = the kind is in the clip's
   ``labels["kinds"]``), SNR-estimate MAE (on clips with a ``noise`` unit, against that unit's
   measured SNR), cutoff error (on clips with a low-pass, against the label's cutoff) and
   gap-boundary error (each labelled gap boundary to the nearest detected boundary).
4. Measures speed: ``analyze_file`` on a long 44.1 kHz stereo file made by concatenating the
   music clips, in times real time (wall and CPU).
5. Renders REPORT/report.html in headless Chromium to a PNG (when chromium is installed).

Usage::

    python benchmarks/analyze_accuracy.py --seed 20261122 --count 300 --out /tmp/analyze_bench

Writes OUT/results.json and prints a Markdown summary for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ARCHTOOL = [sys.executable, "-c", "from archtool.cli.app import main; main()"]
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.exists():
    SHARED = Path("/work/shared/data")


def build_corpus(out: Path, seed: int, count: int, clip_s: float, jobs: int, sources: Path | None = None) -> Path:
    """Degrade ``sources`` (a folder with speech/ and music/; default ../shared/data's) into OUT/corpus."""
    clean = out / "clean_src"
    if clean.exists():
        shutil.rmtree(clean)
    clean.mkdir(parents=True)
    for sub in ("speech", "music"):
        shutil.copytree((sources or SHARED) / sub, clean / sub)
    corpus = out / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    cmd = [*ARCHTOOL, "degrade", str(clean), "-o", str(corpus),
           "--recipe", "mixed-archive", "--seed", str(seed), "--count", str(count),
           "--clip-seconds", str(clip_s), "--rir-dir", str(SHARED / "rir"),
           "--background-dir", str(SHARED / "background"), "--jobs", str(jobs)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return corpus


def load_labels(corpus: Path) -> dict[str, dict]:
    """labels.jsonl keyed by the degraded file's path relative to CORPUS/degraded."""
    out = {}
    for line in (corpus / "labels.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        key = d.get("degraded") or d.get("path") or d.get("file")
        key = str(Path(key))
        if key.startswith("degraded/"):
            key = key[len("degraded/"):]
        out[key] = d
    return out


def run_analyze(corpus: Path, report: Path, jobs: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    subprocess.run([*ARCHTOOL, "analyze", str(corpus / "degraded"), "-o", str(report),
                    "--jobs", str(jobs), "--max-rows", "0"], check=False, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return json.loads((report / "analysis.json").read_text()), wall


def _prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "tp": tp, "fp": fp, "fn": fn}


def score(analysis: dict, labels: dict[str, dict], degraded_root: Path) -> dict:
    from archtool.kinds import KINDS

    rows = []
    for rec in analysis["files"]:
        rel = str(Path(rec["path"]).resolve().relative_to(degraded_root.resolve()))
        if rel not in labels:
            continue
        rows.append((rec, labels[rel]))
    kinds_present = set()
    for _, lab in rows:
        kinds_present |= set(lab.get("kinds", {}))
    per_kind = {}
    for k in KINDS:
        tp = fp = fn = 0
        for rec, lab in rows:
            truth = k in lab.get("kinds", {})
            pred = any(f["kind"] == k and f["detected"] for f in rec["findings"])
            tp += truth and pred
            fp += (not truth) and pred
            fn += truth and (not pred)
        per_kind[k] = _prf(tp, fp, fn) | {"positives": tp + fn}
    # the same per programme type (speech / music: the clip's source folder), for reading only
    by_programme: dict[str, dict] = {}
    for prog in ("speech", "music"):
        sub = [(rec, lab) for rec, lab in rows if str(lab.get("source", "")).startswith(prog + "/")]
        by_programme[prog] = {}
        for k in KINDS:
            tp = sum(1 for rec, lab in sub if k in lab.get("kinds", {}) and
                     any(f["kind"] == k and f["detected"] for f in rec["findings"]))
            fp = sum(1 for rec, lab in sub if k not in lab.get("kinds", {}) and
                     any(f["kind"] == k and f["detected"] for f in rec["findings"]))
            pos = sum(1 for _, lab in sub if k in lab.get("kinds", {}))
            by_programme[prog][k] = _prf(tp, fp, pos - tp) | {"positives": pos, "clips": len(sub)}
    scored = [k for k in KINDS if per_kind[k]["positives"] > 0]
    macro = float(np.mean([per_kind[k]["f1"] for k in scored])) if scored else 0.0

    def finding(rec, kind):
        return next(f for f in rec["findings"] if f["kind"] == kind)

    snr_err, snr_err_only = [], []
    snr_err_det, snr_err_missed, snr_err_detector = [], [], []
    cut_err = []
    gap_err = []
    for rec, lab in rows:
        units = lab.get("units", [])
        nz = [u for u in units if u.get("unit") == "noise"]
        if nz:
            meas = nz[0].get("measured") or {}
            true = meas.get("snr_db", nz[0].get("params", {}).get("snr_db"))
            nzf = finding(rec, "noise")
            est = nzf["measures"].get("snr_db")
            if true is not None and est is not None:
                snr_err.append(abs(est - true))
                (snr_err_det if nzf["detected"] else snr_err_missed).append(abs(est - true))
                det_est = nzf["measures"].get("snr_db_detector", est)
                if det_est is not None:
                    snr_err_detector.append(abs(det_est - true))
                if set(lab.get("kinds", {})) == {"noise"}:
                    snr_err_only.append(abs(est - true))
        if lab.get("cutoff_hz") and "bandlimit" in lab.get("kinds", {}):
            est = finding(rec, "bandlimit")["measures"].get("cutoff_hz")
            if est is not None:
                cut_err.append(abs(est - lab["cutoff_hz"]))
        true_iv = lab.get("gap_intervals_s") or []
        if true_iv and "gaps" in lab.get("kinds", {}):
            det = finding(rec, "gaps")["measures"].get("intervals_s") or []
            bounds = np.array([b for iv in det for b in iv])
            for a, b in true_iv:
                for t in (a, b):
                    gap_err.append(float(np.min(np.abs(bounds - t))) if bounds.size else float("nan"))

    def stats(v):
        v = np.asarray([x for x in v if np.isfinite(x)])
        return {"n": int(v.size), "mean": round(float(v.mean()), 4) if v.size else None,
                "median": round(float(np.median(v)), 4) if v.size else None}

    gap_missing = int(sum(1 for x in gap_err if not np.isfinite(x)))
    return {
        "files_scored": len(rows), "per_kind": per_kind, "macro_f1": round(macro, 4),
        "per_kind_by_programme": by_programme,
        "kinds_scored": scored,
        "snr_mae_db": stats(snr_err), "snr_mae_noise_only_db": stats(snr_err_only),
        "snr_mae_noise_detected_db": stats(snr_err_det), "snr_mae_noise_missed_db": stats(snr_err_missed),
        "snr_mae_detector_db": stats(snr_err_detector),
        "cutoff_abs_error_hz": stats(cut_err),
        "gap_boundary_error_s": stats(gap_err) | {"boundaries_without_detection": gap_missing},
    }


def speed(out: Path, minutes: float) -> dict:
    from archtool.analyze import analyze_file
    from archtool.audio.io import OutputSpec, read_audio, write_audio

    parts = []
    for p in sorted((SHARED / "music").glob("*.flac")):
        a, sr = read_audio(p)
        if sr == 44100 and a.shape[0] == 2:
            parts.append(a)
    one = np.concatenate(parts, axis=1)
    reps = int(np.ceil(minutes * 60 * 44100 / one.shape[1]))
    long = np.concatenate([one] * reps, axis=1)[:, : int(minutes * 60 * 44100)]
    path = out / "speed_44k1_stereo.flac"
    write_audio(path, long, 44100, OutputSpec("flac", 16))
    dur = long.shape[1] / 44100
    del long, one, parts
    load_before = os.getloadavg()[0]
    ch0 = os.times()
    t0, c0 = time.perf_counter(), time.process_time()
    analyze_file(path)  # first file of the process: includes importing torch and loading the checkpoint
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ch1 = os.times()
    # the decoder (ffmpeg) is a child process: count its CPU time too
    dec_cpu = (ch1.children_user + ch1.children_system) - (ch0.children_user + ch0.children_system)
    t1 = time.perf_counter()
    analyze_file(path)  # warm: what each further file of a batch costs
    warm = time.perf_counter() - t1
    return {"audio_s": round(dur, 1), "wall_s": round(wall, 3), "cpu_s_python": round(cpu, 3),
            "cpu_ms_per_audio_s": round(1000 * cpu / dur, 2),
            "cpu_ms_per_audio_s_with_decoder": round(1000 * (cpu + dec_cpu) / dur, 2),
            "x_realtime_wall": round(dur / wall, 1), "x_realtime_cpu": round(dur / cpu, 1),
            "decoder_cpu_s": round(dec_cpu, 2), "warm_wall_s": round(warm, 3),
            "x_realtime_wall_warm": round(dur / warm, 1),
            "loadavg_1min_before": round(load_before, 2), "loadavg_1min": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count()}


def render(report: Path, png: Path) -> bool:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        return False
    with tempfile.TemporaryDirectory() as prof:
        subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={prof}", f"--screenshot={png}", "--window-size=1400,2000",
                        (report / "report.html").resolve().as_uri()],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return png.exists()


def markdown(res: dict) -> str:
    s = res["score"]
    lines = ["| kind | positives | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    bp = s.get("per_kind_by_programme", {})
    if bp:
        lines[0] += " F1 speech (pos.) | F1 music (pos.) |"
        lines[1] += "---:|---:|"
    for k, v in s["per_kind"].items():
        row = f"| {k} | {v['positives']} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} |"
        if bp:
            row += "".join(f" {bp[g][k]['f1']:.3f} ({bp[g][k]['positives']}) |" for g in ("speech", "music"))
        lines.append(row)
    lines.append("")
    lines.append(f"macro-F1 over the {len(s['kinds_scored'])} kinds present: **{s['macro_f1']:.3f}**; "
                 f"SNR MAE {s['snr_mae_db']['mean']} dB (n={s['snr_mae_db']['n']}; noise-only clips "
                 f"{s['snr_mae_noise_only_db']['mean']} dB, n={s['snr_mae_noise_only_db']['n']}; where noise was "
                 f"detected {s['snr_mae_noise_detected_db']['mean']} dB, n={s['snr_mae_noise_detected_db']['n']}; "
                 f"missed {s['snr_mae_noise_missed_db']['mean']} dB, n={s['snr_mae_noise_missed_db']['n']}; the "
                 f"detector's own estimate {s['snr_mae_detector_db']['mean']} dB); "
                 f"cutoff |error| median {s['cutoff_abs_error_hz']['median']} Hz, mean "
                 f"{s['cutoff_abs_error_hz']['mean']} Hz (n={s['cutoff_abs_error_hz']['n']}); gap boundary "
                 f"|error| median {s['gap_boundary_error_s']['median']} s, mean {s['gap_boundary_error_s']['mean']} s "
                 f"(n={s['gap_boundary_error_s']['n']}, {s['gap_boundary_error_s']['boundaries_without_detection']} "
                 "without any detected gap).")
    if res.get("speed"):
        sp = res["speed"]
        lines.append(f"Speed: {sp['audio_s']} s of 44.1 kHz stereo FLAC analysed in {sp['wall_s']} s wall "
                     f"= {sp['x_realtime_wall']}x real time in a fresh process ({sp['x_realtime_cpu']}x on the "
                     f"Python process's CPU time, decoder {sp['decoder_cpu_s']} s CPU); again in the same process "
                     f"{sp['warm_wall_s']} s = {sp['x_realtime_wall_warm']}x; {sp['cpus']} CPUs, 1-min load "
                     f"average {sp['loadavg_1min_before']:.2f} before, {sp['loadavg_1min']:.2f} after.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20261122)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--clip-seconds", type=float, default=5.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "archtool_analyze_bench")
    ap.add_argument("--reuse-corpus", action="store_true", help="score an existing OUT/corpus")
    ap.add_argument("--speed-minutes", type=float, default=10.0)
    ap.add_argument("--speed-only", action="store_true", help="only the speed measurement")
    ap.add_argument("--sources", type=Path, default=None,
                    help="clean recordings to degrade: a folder with speech/ and music/ (default: ../shared/data's, "
                         "which the shipped detector was trained on; give other recordings to measure how it "
                         "generalises)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.speed_only:
        sp = speed(args.out, args.speed_minutes)
        (args.out / "speed.json").write_text(json.dumps(sp, indent=1))
        print(json.dumps(sp, indent=1))
        return
    corpus = args.out / "corpus"
    if not (args.reuse_corpus and (corpus / "labels.jsonl").exists()):
        corpus = build_corpus(args.out, args.seed, args.count, args.clip_seconds, args.jobs, args.sources)
    labels = load_labels(corpus)
    report = args.out / "report"
    load0 = os.getloadavg()[0]
    analysis, wall = run_analyze(corpus, report, args.jobs)
    res = {"seed": args.seed, "count": args.count, "clip_seconds": args.clip_seconds,
           "sources": str(args.sources or SHARED),
           "analyze_wall_s": round(wall, 2), "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
           "score": score(analysis, labels, corpus / "degraded")}
    if args.speed_minutes > 0:
        res["speed"] = speed(args.out, args.speed_minutes)
    png = args.out / "report.png"
    res["rendered_png"] = str(png) if render(report, png) else None
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"\nresults: {args.out / 'results.json'}; report: {report / 'report.html'}; png: {res['rendered_png']}")


if __name__ == "__main__":
    main()
