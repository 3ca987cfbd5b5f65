"""Bandwidth extension and phone enhancement benchmark (issue 10).

Held-out clips only (see archtool.train.bwe_data.HELD_OUT_*): none of them was used in
training. Sections:

1. speech super-resolution at 16 kHz, factors 2 and 4, each of seed 002's four
   downsampling schemes: cubic spline (seed 002's baseline: spline through the
   subsampled samples), windowed-sinc (polyphase) resampling, and ours (sinc + learned
   extension above the detected cutoff). SNR (dB), LSD (log10 power, the field's
   definition), LSD as computed in kuleshov/audio-super-res (which seed 002's code uses),
   wide-band PESQ (pesq package, ITU-T P.862.2).
2. 16 -> 44.1 kHz speech (two clips whose 16 kHz band was in training; their 8-22 kHz
   band never was): sinc vs ours (music model; the speech models only know 16 kHz).
3. music bandwidth extension: held-out pieces at 44.1 and 22.05 kHz low-passed at 4, 6,
   8 and 11 kHz (8th-order zero-phase Butterworth); the band-limited input vs ours in
   conservative mode with the cutoff detected from the audio; plus the largest deviation
   of the output from the input below the cutoff.
4. phone enhancement: held-out speech through the team's ``phone`` degradation recipe
   (held-out background noises only) and through our telephone-channel simulation;
   PESQ-WB and LSD of the degraded input, of the DSP ``speech`` preset (when the
   planner and that preset are installed), of the ``enhance`` restorer alone, of the
   ``phone`` preset and of that preset's DSP chain without its learned step; the paired
   ``phone`` minus ``speech`` difference with 95 % intervals (``--draws`` degradations
   per clip give more pairs).

Usage: python benchmarks/bwe.py [--data ../shared/data] [--out results.json] [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline

from archtool.models.bwe import effective_cutoff_hz
from archtool.models.checkpoint import PACKAGED_DIR
from archtool.restore.bwe import extend_bandwidth, super_resolve
from archtool.restore.enhance import enhance_phone
from archtool.train import bwe_data as D
from archtool.train.bwe_metrics import lsd, lsd_kuleshov, snr_db

try:
    from pesq import pesq as _pesq
except ImportError:  # PESQ is optional (bench extra)
    _pesq = None


MODEL_DIR: Path | None = None  # --models: checkpoints from a folder instead of the packaged ones
GAINS = (1.0, 0.5)


def _model(name: str) -> str:
    """Path of checkpoint ``name`` (file stem) in --models, else in the package."""
    return str((MODEL_DIR or PACKAGED_DIR) / f"{name}.pt")


def pesq_wb(ref: np.ndarray, est: np.ndarray, rate: int) -> float:
    """Wide-band PESQ at 16 kHz (NaN when the package is absent or the clip is unusable)."""
    if _pesq is None:
        return float("nan")
    r, e = ref, est
    if rate != 16000:
        r, e = D.resample(ref, rate, 16000), D.resample(est, rate, 16000)
    n = min(len(r), len(e))
    try:
        return float(_pesq(16000, r[:n].astype(np.float64), e[:n].astype(np.float64), "wb"))
    except Exception:
        return float("nan")


def spline_upsample(low: np.ndarray, low_rate: int, rate: int, n: int) -> np.ndarray:
    """Cubic spline through the low-rate samples, evaluated at the high-rate instants."""
    t_low = np.arange(len(low)) / low_rate
    t = np.arange(n) / rate
    return CubicSpline(t_low, low, extrapolate=True)(np.minimum(t, t_low[-1]))


def _norm(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * 0.1


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) == r.get(key)]
    return float(np.mean(vals)) if vals else float("nan")


def speech_sr(data: Path, quick: bool) -> dict:
    clips = D.load_clips(data / "speech", True, D.HELD_OUT_SPEECH)
    rate = 16000
    out: dict = {}
    schemes = ("decimate", "mix") if quick else D.SCHEMES
    for factor in (2, 4):
        low_rate = rate // factor
        rows: dict[str, list] = {"spline": [], "sinc": []} | {f"ours_gain{g}": [] for g in GAINS}
        for scheme in schemes:
            for clip in clips:
                rng = np.random.default_rng([factor, len(scheme), len(clip.name)])
                s = _norm(D.resample(clip.audio, clip.rate, rate))
                low = D.downsample(s, rate, low_rate, scheme, rng)
                est = {
                    "spline": spline_upsample(low, low_rate, rate, len(s)),
                    "sinc": np.pad(D.resample(low, low_rate, rate), (0, len(s)))[:len(s)],
                }
                for g in GAINS:
                    est[f"ours_gain{g}"] = super_resolve(low[None].astype(np.float32), low_rate, rate, gain=g,
                                                         model=_model(f"bwe_speech_x{factor}"))[0, :len(s)]
                for name, y in est.items():
                    y = np.pad(y, (0, max(0, len(s) - len(y))))[:len(s)]
                    rows[name].append({"scheme": scheme, "clip": clip.name, "snr_db": snr_db(s, y),
                                       "lsd": lsd(s, y), "lsd_kuleshov": lsd_kuleshov(s, y),
                                       "pesq_wb": pesq_wb(s, y, rate)})
        out[f"x{factor}"] = {name: {k: _mean(r, k) for k in ("snr_db", "lsd", "lsd_kuleshov", "pesq_wb")}
                             | {"per_scheme": {sc: {k: _mean([q for q in r if q["scheme"] == sc], k)
                                                    for k in ("snr_db", "lsd")} for sc in schemes},
                                "n": len(r)}
                             for name, r in rows.items()}
    return out


def speech_16_to_44(data: Path) -> dict:
    names = ("freesound_xmas_male", "vctk_p286_011")
    rows: dict[str, list] = {"spline": [], "sinc": []} | {f"ours_gain{g}": [] for g in GAINS}
    for clip in D.load_clips(data / "speech", True, names):
        s = _norm(D.resample(clip.audio, clip.rate, 44100))
        low = D.resample(s, 44100, 16000)
        est = {"spline": spline_upsample(low, 16000, 44100, len(s)),
               "sinc": np.pad(D.resample(low, 16000, 44100), (0, len(s)))[:len(s)]}
        for g in GAINS:
            est[f"ours_gain{g}"] = super_resolve(low[None].astype(np.float32), 16000, 44100, gain=g,
                                                 content="music", model=_model("bwe_music"))[0]
        for name, y in est.items():
            y = np.pad(y, (0, max(0, len(s) - len(y))))[:len(s)]
            rows[name].append({"snr_db": snr_db(s, y), "lsd": lsd(s, y), "lsd_kuleshov": lsd_kuleshov(s, y)})
    return {name: {k: _mean(r, k) for k in ("snr_db", "lsd", "lsd_kuleshov")} | {"n": len(r)}
            for name, r in rows.items()}


def music_bwe(data: Path, quick: bool) -> dict:
    from scipy import signal
    clips = D.load_clips(data / "music", True, D.HELD_OUT_MUSIC)
    out: dict = {}
    for rate in (44100, 22050):
        cutoffs = (4000.0, 6000.0, 8000.0, 11000.0) if rate == 44100 else (4000.0, 6000.0, 8000.0)
        rows: dict[str, list] = {"input": [], "ours": []}
        max_dev = 0.0
        for cut in cutoffs:
            for clip in (clips[::2] if quick else clips):
                s = _norm(D.resample(clip.audio, clip.rate, rate))
                x = signal.sosfiltfilt(signal.butter(8, cut / (rate / 2), output="sos"), s).astype(np.float32)
                det = effective_cutoff_hz(x, rate)
                y = extend_bandwidth(x[None], rate, det, content="music", model=_model("bwe_music"))[0]
                spec_x, spec_y = np.fft.rfft(x.astype(np.float64)), np.fft.rfft(y.astype(np.float64))
                below = np.fft.rfftfreq(len(x), 1 / rate) < det
                max_dev = max(max_dev, float(np.max(np.abs(spec_y[below] - spec_x[below]))
                                             / (np.max(np.abs(spec_x)) + 1e-12)))
                for name, est in (("input", x), ("ours", y)):
                    rows[name].append({"cutoff": cut, "detected": det, "snr_db": snr_db(s, est),
                                       "lsd": lsd(s, est), "lsd_kuleshov": lsd_kuleshov(s, est)})
        out[str(rate)] = {name: {k: _mean(r, k) for k in ("snr_db", "lsd", "lsd_kuleshov")}
                          | {"per_cutoff": {str(int(c)): {k: _mean([q for q in r if q["cutoff"] == c], k)
                                                         for k in ("lsd", "snr_db", "detected")} for c in cutoffs},
                             "n": len(r)} for name, r in rows.items()}
        out[str(rate)]["max_below_cutoff_deviation_rel"] = max_dev
    return out


def _preset_steps(name: str, audio: np.ndarray, rate: int) -> list | None:
    """The steps restore's planner makes for ``audio`` under preset ``name`` (analysis
    then plan), or None when the analyzer, the planner or the preset is not installed."""
    try:
        from archtool.analyze.analyzer import analyze_audio
        from archtool.restore.plan import make_plan
        return make_plan(analyze_audio(audio, rate), name)
    except Exception as exc:  # missing module or preset: the row is left out and said why
        print(f"  preset {name!r} unavailable: {exc}", file=sys.stderr)
        return None


def paired_difference(d: np.ndarray, clips: list[str], seed: int = 0, n_boot: int = 2000) -> dict:
    """Mean of paired differences ``d`` with its standard error, a 95 % t interval over the
    pairs, and a 95 % bootstrap interval that resamples whole clips (the pairs of one clip
    -- both simulations, all draws -- are not independent)."""
    from scipy import stats

    d = np.asarray(d, float)
    ok = np.isfinite(d)
    d, clips = d[ok], [c for c, k in zip(clips, ok) if k]
    n = len(d)
    sem = float(np.std(d, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    t = float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    names = sorted(set(clips))
    groups = [d[[c == name for c in clips]] for name in names]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        boots.append(np.mean(np.concatenate([groups[i] for i in pick])))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"mean": float(np.mean(d)), "sem": sem, "ci95_t": [float(np.mean(d) - t * sem), float(np.mean(d) + t * sem)],
            "ci95_clip_bootstrap": [float(lo), float(hi)], "wins": int(np.sum(d > 0)), "n": n, "clips": len(names)}


def _clip_of(name: str) -> str:
    """The source clip of a pair's clip name (``clip@part~draw`` -> ``clip``)."""
    return name.split("~")[0].split("@")[0]


def phone(data: Path, quick: bool, split: str = "benchmark", draws: int = 1) -> dict:
    from archtool.api import restore_audio
    rate = 16000
    rows: dict[str, dict[str, list]] = {}
    plans: dict[str, list] = {}
    items = D.phone_pairs(data, split, rate, draws)
    from archtool.restore.presets import load_preset
    tuned = load_preset("phone").kinds["bandlimit"].params  # enhance alone runs with the preset's settings
    settings = {"gain": float(tuned.get("gain", 1.0)), "strength": float(tuned.get("strength", 1.0))}
    if quick:
        items = items[::3]
    for sim, name, s, x in items:
        s = s.astype(np.float64)
        x32 = x[None]
        est = {"degraded": x, "enhance": enhance_phone(x32, rate, model=_model("enhance_phone"), **settings)[0]}
        for preset in ("speech", "phone"):
            steps = _preset_steps(preset, x32, rate)
            if steps is not None:
                est[f"preset_{preset}"] = restore_audio(x32, rate, steps, normalize=False)[0]
                plans[preset] = [st.history_line() for st in steps]
                if preset == "phone":  # its DSP chain alone: what the learned step adds
                    dsp = [st for st in steps if st.restorer != "enhance"]
                    est["phone_dsp_only"] = restore_audio(x32, rate, dsp, normalize=False)[0] if dsp else x
        for method, y in est.items():
            rows.setdefault(sim, {}).setdefault(method, []).append(
                {"clip": name, "pesq_wb": pesq_wb(s, y, rate), "lsd": lsd(s, y)})
    out: dict = {"split": split, "draws": draws, "enhance_settings": settings}
    all_d, all_clips = [], []
    for sim, by_method in rows.items():
        out[sim] = {m: {k: _mean(r, k) for k in ("pesq_wb", "lsd")} | {"n": len(r)} for m, r in by_method.items()}
        if "preset_phone" in by_method and "preset_speech" in by_method:
            d = [a["pesq_wb"] - b["pesq_wb"] for a, b in zip(by_method["preset_phone"], by_method["preset_speech"])]
            clips = [_clip_of(a["clip"]) for a in by_method["preset_phone"]]
            out[sim]["phone_minus_speech"] = paired_difference(np.array(d), clips)
            d2 = [a["pesq_wb"] - b["pesq_wb"] for a, b in zip(by_method["preset_phone"], by_method["phone_dsp_only"])]
            out[sim]["phone_minus_its_dsp_chain"] = paired_difference(np.array(d2), clips)
            all_d += d
            all_clips += clips
    if all_d:
        out["phone_minus_speech_all"] = paired_difference(np.array(all_d), all_clips)
    out["last_plans"] = plans
    return out


def tune_phone(data: Path, model: str | None = None, denoise: tuple[float, ...] = (0.0, 0.5, 1.0),
               strengths: tuple[float, ...] = (0.0, 0.5, 1.0), gains: tuple[float, ...] = (0.0, 0.5, 1.0),
               split: str = "validation") -> dict:
    """Settings of the ``phone`` preset chosen on clips that are never the benchmark's
    (``split`` ``validation``: shared/data/speech_eval's validation clips; ``tune``: the
    training clips, when speech_eval is absent): mean PESQ-WB per (DSP denoise depth scale,
    stage-1 strength, generated-band gain), the DSP part planned by the preset from the
    analysis of each degraded clip, and each setting minus the ``speech`` preset."""
    from dataclasses import replace

    from archtool.api import restore_audio
    rate = 16000
    model = model or _model("enhance_phone")
    scores: dict[str, list] = {}
    for sim, name, s, x in D.phone_pairs(data, split, rate):
        s = s.astype(np.float64)
        steps = _preset_steps("phone", x[None], rate) or []
        speech = _preset_steps("speech", x[None], rate) or []
        scores.setdefault("speech_preset", []).append(pesq_wb(s, restore_audio(x[None], rate, speech, normalize=False)[0], rate))
        scores.setdefault("input", []).append(pesq_wb(s, x, rate))
        dsp = [st for st in steps if st.restorer != "enhance"]
        for dn in denoise:
            chain = []
            for st in dsp:
                if st.restorer == "denoise" and "max_reduction_db" in st.params:
                    if dn == 0.0:
                        continue
                    st = replace(st, params=dict(st.params, max_reduction_db=st.params["max_reduction_db"] * dn))
                chain.append(st)
            mid = restore_audio(x[None], rate, chain, normalize=False)
            for strength in strengths:
                for gain in gains:
                    y = enhance_phone(mid, rate, gain=gain, strength=strength, model=model)[0]
                    scores.setdefault(f"denoise{dn}_strength{strength}_gain{gain}", []).append(pesq_wb(s, y, rate))
    sp = np.array(scores["speech_preset"])
    table = {k: {"pesq_wb": float(np.nanmean(v)), "minus_speech": float(np.nanmean(np.array(v) - sp)), "n": len(v)}
             for k, v in scores.items()}
    best = max((k for k in table if k.startswith("denoise")), key=lambda k: table[k]["pesq_wb"])
    return {"split": split, "model": Path(model).name, "scores": table, "best": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="fewer schemes and clips")
    ap.add_argument("--only", default="speech,speech44,music,phone",
                    help="sections: speech, speech44, music, phone, tune_phone (settings on the validation clips)")
    ap.add_argument("--split", default="benchmark", choices=("benchmark", "validation", "tune"),
                    help="phone section: the benchmark clips, or validation / tune clips (for tuning)")
    ap.add_argument("--draws", type=int, default=1, help="phone section: degradations drawn per clip and simulation")
    ap.add_argument("--tune-split", default=None, choices=("validation", "tune"),
                    help="tune_phone: validation (shared/data/speech_eval) or tune (training clips); "
                         "default validation when speech_eval exists")
    ap.add_argument("--grid", default="0,0.5,1;0,0.5,1;0,0.5,1",
                    help="tune_phone: DSP denoise depth scales; stage-1 strengths; generated-band gains")
    ap.add_argument("--models", type=Path, default=None, help="folder of checkpoints to test instead of the packaged ones")
    args = ap.parse_args()
    global MODEL_DIR
    MODEL_DIR = args.models
    only = set(args.only.split(","))
    t0 = time.time()
    res: dict = {"machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
                 "pesq": "pesq package (wb)" if _pesq else "not installed"}
    if "speech" in only:
        res["speech_sr_16k"] = speech_sr(args.data, args.quick)
    if "speech44" in only:
        res["speech_16_to_44k"] = speech_16_to_44(args.data)
    if "music" in only:
        res["music_bwe"] = music_bwe(args.data, args.quick)
    if "phone" in only:
        res["phone_enhance"] = phone(args.data, args.quick, args.split, args.draws)
    if "tune_phone" in only:
        grid = [tuple(float(v) for v in part.split(",")) for part in args.grid.split(";")]
        split = args.tune_split or ("validation" if (args.data / "speech_eval").is_dir() else "tune")
        res["tune_phone"] = tune_phone(args.data, None, *grid, split=split)
    res["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
