"""Classic restoration quality and speed, archtool against the peers that run here.

Per defect kind, a corpus is built from ../shared/data clean speech and music excerpts
degraded with archtool's own degrade units (one seeded degradation per clip). On each
degraded clip the script runs, on the same clips in the same run:

* ``archtool-auto``: what ``archtool restore`` does: ``analyze_audio`` -> ``make_plan``
  (preset ``auto``) -> the planned chain (loudness normalisation excluded, so the output
  is comparable sample by sample);
* ``archtool-<restorer>``: the kind's restorer alone, with the parameters the preset
  rule derives from the analysis (kind known in advance);
* peers: noisereduce (library defaults, no noise clip); ffmpeg ``adeclick``,
  ``adeclip``, ``afftdn``, ``anlmdn``, ``highpass`` (imageio-ffmpeg's binary, default
  settings, output latency removed by a blind cross-correlation with the degraded input);
  ``nara-wpe`` (its numpy WPE with 10 taps, delay 3, 3 iterations); each only for the
  kinds it addresses.

Reported per kind and method: mean improvement (output minus degraded input) of SDR and
SI-SDR in dB, mean log-spectral distance of the output (dB), PESQ and STOI of the output
on speech (when installed), and speed in x real time (CPU seconds of this process and
its children, so the shared machine's load does not count). Separately: the full
``auto`` chain's speed on 44.1 kHz mono (analysis and restoration timed apart).

Usage: python benchmarks/restore_quality.py [--quick] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from archtool.analyze import analyze_audio  # noqa: E402
from archtool.audio.ffmpeg import ffmpeg_executable  # noqa: E402
from archtool.audio.io import read_audio  # noqa: E402
from archtool.degrade import apply_unit  # noqa: E402
from archtool.metrics import lsd_db, pesq_score, sdr_db, si_sdr_db, stoi_score  # noqa: E402
from archtool.restore.chain import run_steps  # noqa: E402
from archtool.restore.plan import MISSING, evaluate_rule, make_plan  # noqa: E402
from archtool.restore.presets import load_preset  # noqa: E402
from archtool.restore.registry import get_restorer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SPEECH = ["speech/cmu_arctic_us_aew_a0001.flac", "speech/cmu_arctic_us_axb_a0004.flac",
          "speech/librispeech_198-209-0000.flac", "speech/vctk_p286_011.flac", "speech/vctk_msp_2.flac"]
MUSIC = ["music/brahms_hungarian5_strings_0.flac", "music/pistachio_ragtime_orsa_0.flac",
         "music/vibe_ace_macleod_0.flac", "music/solo_trumpet_sorohan_0.flac", "music/sweet_waltz_setuniman_0.flac"]

# kind -> (degrade unit, its parameters, the restorer that treats it)
KINDS = {
    "clicks": ("clicks", {"rate_hz": 6.0}, "declick"),
    "crackle": ("crackle", {"snr_db": 20.0}, "decrackle"),
    "hum": ("hum", {"snr_db": 10.0, "freq_hz": 50.0}, "dehum"),
    "rumble": ("rumble", {"snr_db": 5.0}, "derumble"),
    "noise": ("noise", {"snr_db": 10.0, "colour": "white"}, "denoise"),
    "clipping": ("clipping", {"fraction": 0.02}, "declip"),
    "reverb": ("reverb", {"rt60_s": 0.6, "source": "synthetic"}, "dereverb"),
}
PEERS = {
    "clicks": ["ffmpeg-adeclick"], "crackle": ["ffmpeg-adeclick", "noisereduce"],
    "hum": ["noisereduce"], "rumble": ["ffmpeg-highpass"],
    "noise": ["noisereduce", "ffmpeg-afftdn", "ffmpeg-anlmdn"],
    "clipping": ["ffmpeg-adeclip"], "reverb": ["nara-wpe"],
}


def cpu_time() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_clip(rel: str, seconds: float) -> tuple[np.ndarray, int]:
    x, sr = read_audio(SHARED / rel)
    x = x[:1, : int(seconds * sr)].astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    return x.astype(np.float32), sr


def ffmpeg_filter(x: np.ndarray, sr: int, filt: str) -> np.ndarray:
    """Run an ffmpeg audio filter over float32 (C, N) audio through raw pipes."""
    C = x.shape[0]
    cmd = [ffmpeg_executable(), "-v", "error", "-f", "f32le", "-ar", str(sr), "-ac", str(C), "-i", "pipe:0",
           "-af", filt, "-f", "f32le", "-ar", str(sr), "-ac", str(C), "pipe:1"]
    r = subprocess.run(cmd, input=np.ascontiguousarray(x.T, dtype="<f4").tobytes(), capture_output=True, check=True)
    y = np.frombuffer(r.stdout, dtype="<f4").reshape(-1, C).T
    out = np.zeros_like(x)
    n = min(y.shape[1], x.shape[1])
    out[:, :n] = y[:, :n]
    return out


def run_peer(name: str, y: np.ndarray, sr: int) -> np.ndarray:
    if name == "noisereduce":
        import noisereduce

        return np.asarray(noisereduce.reduce_noise(y=y[0], sr=sr), dtype=np.float32).reshape(y.shape)
    if name == "nara-wpe":
        from nara_wpe.utils import istft, stft
        from nara_wpe.wpe import wpe

        n_fft = 512 if sr <= 16000 else 1024
        Y = stft(y, size=n_fft, shift=n_fft // 4).transpose(2, 0, 1)
        Z = wpe(Y, taps=10, delay=3, iterations=3, statistics_mode="full").transpose(1, 2, 0)
        z = istft(Z, size=n_fft, shift=n_fft // 4)
        out = np.zeros_like(y)
        n = min(out.shape[1], z.shape[-1])
        out[:, :n] = z[..., :n]
        return out
    filt = {"ffmpeg-adeclick": "adeclick", "ffmpeg-adeclip": "adeclip", "ffmpeg-afftdn": "afftdn",
            "ffmpeg-anlmdn": "anlmdn", "ffmpeg-highpass": "highpass=f=30:poles=2"}[name]
    return align_to(ffmpeg_filter(y, sr, filt), y, int(0.1 * sr))


def align_to(z: np.ndarray, y: np.ndarray, max_lag: int) -> np.ndarray:
    """Undo a filter's latency: shift ``z`` by the lag (0..max_lag) that best matches the
    degraded input ``y`` (blind: the clean reference is not used)."""
    n = y.shape[1]
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(z[0], nfft) * np.conj(np.fft.rfft(y[0], nfft)), nfft)[: max_lag + 1]
    lag = int(np.argmax(xc))
    out = np.zeros_like(z)
    out[:, : n - lag] = z[:, lag:]
    return out


def kind_params(kind: str, profile) -> dict:
    """The restorer's parameters under the auto preset's rule for ``kind`` (analysis-derived)."""
    rule = load_preset("auto").kinds[kind]
    finding = profile.finding(kind)
    params = {}
    for k, r in rule.params.items():
        v = evaluate_rule(r, profile, finding)
        if v is not MISSING:
            params[k] = v
    return params


def evaluate(x: np.ndarray, y: np.ndarray, z: np.ndarray, sr: int, speech: bool) -> dict:
    out = {"d_sdr": sdr_db(x, z) - sdr_db(x, y), "d_si_sdr": si_sdr_db(x[0], z[0]) - si_sdr_db(x[0], y[0]),
           "lsd": lsd_db(x, z)}
    if speech:
        out["pesq"] = pesq_score(x, z, sr)
        out["stoi"] = stoi_score(x, z, sr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 speech + 2 music clips of 3 s")
    ap.add_argument("--clips", type=int, default=5, help="speech and music clips per kind (each)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "restore_quality.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not SHARED.is_dir():
        sys.exit(f"{SHARED}: shared data not found")
    speech, music = (SPEECH[:2], MUSIC[:2]) if args.quick else (SPEECH[: args.clips], MUSIC[: args.clips])
    seconds = 3.0 if args.quick else args.seconds
    clips = [(rel, True) for rel in speech] + [(rel, False) for rel in music]
    results: dict = {"kinds": {}, "machine": os.uname().nodename, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_avg_start": os.getloadavg()}
    for kind in args.kinds.split(","):
        unit, uparams, restorer = KINDS[kind]
        methods = ["archtool-auto", f"archtool-{restorer}"] + PEERS[kind]
        rows: dict[str, list[dict]] = {m: [] for m in methods}
        for i, (rel, is_speech) in enumerate(clips):
            x, sr = load_clip(rel, seconds)
            y, _ = apply_unit(unit, x, sr, uparams, np.random.default_rng(1000 + i))
            y = np.asarray(y, dtype=np.float32)
            dur = y.shape[1] / sr
            t0 = cpu_time()
            profile = analyze_audio(y, sr)
            t_an = cpu_time() - t0
            for m in methods:
                t0 = cpu_time()
                if m == "archtool-auto":
                    steps = make_plan(profile, "auto")
                    z = run_steps(y, sr, steps)
                    extra = {"steps": [s.restorer for s in steps]}
                elif m.startswith("archtool-"):
                    p = kind_params(kind, profile)
                    z = get_restorer(restorer).process(torch.from_numpy(y), sr, p).numpy()
                    extra = {}
                else:
                    try:
                        z = run_peer(m, y, sr)
                    except Exception as exc:  # a peer that fails on a clip is recorded, not fatal
                        rows[m].append({"clip": rel, "error": str(exc)[:200]})
                        continue
                    extra = {}
                dt = cpu_time() - t0 + (t_an if m.startswith("archtool") else 0.0)
                r = evaluate(x, y, np.asarray(z, dtype=np.float32), sr, is_speech)
                r.update(clip=rel, speech=is_speech, xrt=dur / max(dt, 1e-6), **extra)
                rows[m].append(r)
            print(f"{kind:9s} {rel}", flush=True)
        summary = {}
        for m, rs in rows.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                summary[m] = {"n": 0, "errors": len(rs)}
                continue

            def mean(key, sel=ok):
                vals = [r[key] for r in sel if r.get(key) is not None]
                return float(np.mean(vals)) if vals else None

            sp = [r for r in ok if r["speech"]]
            summary[m] = {"n": len(ok), "d_sdr": mean("d_sdr"), "d_si_sdr": mean("d_si_sdr"), "lsd": mean("lsd"),
                          "pesq": mean("pesq", sp), "stoi": mean("stoi", sp), "xrt": mean("xrt"),
                          "d_sdr_speech": mean("d_sdr", sp), "d_sdr_music": mean("d_sdr", [r for r in ok if not r["speech"]]),
                          "errors": len(rs) - len(ok)}
        results["kinds"][kind] = {"unit": unit, "params": uparams, "summary": summary, "rows": rows}
        Path(args.out).write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
        print(f"== {kind}: " + "; ".join(f"{m} dSDR {s.get('d_sdr', float('nan')):.2f}" for m, s in summary.items()
                                         if s.get('n')), flush=True)
    results["auto_chain_speed"] = chain_speed()
    results["load_avg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    print_table(results)


def chain_speed(seconds: float = 20.0) -> dict:
    """The auto chain on 44.1 kHz mono music degraded by the 78rpm recipe (CPU time)."""
    from archtool.degrade import Degrader

    x, sr = read_audio(SHARED / "music" / "pistachio_ragtime_orsa_0.flac")
    x2, _ = read_audio(SHARED / "music" / "pistachio_ragtime_orsa_1.flac")
    x = np.concatenate([x[:1], x2[:1], x[:1]], axis=1)[:, : int(seconds * sr)].astype(np.float32)
    y, labels = Degrader("78rpm")(x, sr, np.random.default_rng(7))
    y = np.asarray(y, dtype=np.float32)
    dur = y.shape[1] / sr
    t0 = cpu_time()
    profile = analyze_audio(y, sr)
    t_an = cpu_time() - t0
    steps = make_plan(profile, "auto")
    t0 = cpu_time()
    run_steps(y, sr, steps)
    t_re = cpu_time() - t0
    per_step = {}
    z = torch.from_numpy(y)
    for s in steps:
        t0 = cpu_time()
        z = get_restorer(s.restorer).process(z, sr, dict(s.params))
        per_step[s.restorer] = round(dur / max(cpu_time() - t0, 1e-6), 1)
    # The planned chain depends on what the analysis found; also time the whole classic
    # chain (every classic restorer a 78 RPM transfer may need, parameters from the rules).
    preset = load_preset("auto")
    classic = []
    for kind in ("clipping", "rumble", "clicks", "crackle", "hum", "noise"):
        rule = preset.kinds[kind]
        f = profile.finding(kind)
        params = {k: v for k, r in rule.params.items() if (v := evaluate_rule(r, profile, f)) is not MISSING}
        classic.append((rule.order, rule.restorer, params))
    classic.sort(key=lambda t: t[0])
    load0 = os.getloadavg()[0]
    t0 = cpu_time()
    z = torch.from_numpy(y)
    classic_steps = {}
    for _, name, params in classic:
        t1 = cpu_time()
        z = get_restorer(name).process(z, sr, params)
        classic_steps[name] = round(dur / max(cpu_time() - t1, 1e-6), 1)
    t_classic = cpu_time() - t0
    return {"seconds": dur, "sample_rate": sr, "steps": [s.history_line() for s in steps],
            "classic_chain": [n for _, n, _ in classic], "classic_chain_xrt": dur / max(t_classic, 1e-6),
            "classic_per_step_xrt": classic_steps, "load_avg_1min": load0,
            "restore_xrt": dur / max(t_re, 1e-6), "analyze_xrt": dur / max(t_an, 1e-6),
            "analyze_plus_restore_xrt": dur / max(t_an + t_re, 1e-6), "per_step_xrt": per_step}


def print_table(results: dict) -> None:
    print("\n| kind | method | n | ΔSDR dB | ΔSI-SDR dB | LSD dB | PESQ | STOI | x real time |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v, f=".2f": "–" if v is None else format(v, f)  # noqa: E731
    for kind, d in results["kinds"].items():
        for m, s in d["summary"].items():
            if not s.get("n"):
                print(f"| {kind} | {m} | 0 | failed | | | | | |")
                continue
            print(f"| {kind} | {m} | {s['n']} | {fmt(s['d_sdr'])} | {fmt(s['d_si_sdr'])} | {fmt(s['lsd'])} | "
                  f"{fmt(s['pesq'])} | {fmt(s['stoi'])} | {fmt(s['xrt'], '.1f')} |")
    cs = results["auto_chain_speed"]
    print(f"\nauto chain on {cs['seconds']:.0f} s of 44.1 kHz mono (78rpm recipe): {cs['steps']}; restore "
          f"{cs['restore_xrt']:.1f}x, analyze {cs['analyze_xrt']:.1f}x, both {cs['analyze_plus_restore_xrt']:.1f}x real "
          f"time; per step {cs['per_step_xrt']}; full classic chain {cs['classic_chain']}: "
          f"{cs['classic_chain_xrt']:.1f}x real time (per step {cs['classic_per_step_xrt']}; load {cs['load_avg_1min']:.1f})")


if __name__ == "__main__":
    main()
