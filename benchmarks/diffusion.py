"""CQT diffusion benchmark (issue 11): 78 RPM surface noise, zero-shot bandwidth extension and
declipping on music held out of training, with the peers that run here, in one run.

    python benchmarks/diffusion.py [--items 3] [--steps 10] [--seconds 3] [--json out.json]

Corpus: the clips the shipped checkpoint (``diffusion_music22k``) held out of training, cut
into ``--items`` excerpts per SNR, each degraded with the ``78rpm`` recipe (surface noise,
clicks, crackle, band limit, occasional rumble/hum/wow/clipping) with the surface-noise SNR
fixed to 5, 10, 15, 20 and 25 dB. Every method restores the same degraded excerpts:

* ``78rpm`` preset (archtool DSP chain: declick, decrackle, ..., spectral denoise, BWE) and
  ``78rpm-diffusion`` (the same chain with the diffusion restorer for the noise, planned on
  every item), both planned from the analysis of the degraded excerpt (``analyze_audio`` +
  ``make_plan``); and a control, the DSP chain with its surface-noise step planned on every
  item too, which separates what the prior adds from what that policy adds;
* the diffusion restorer alone with the item's analysed noise measures (guidance off, and
  with weight ``--xi``), the Op-GAN music restorer (``opgan``, shipped checkpoint),
  noisereduce, ffmpeg ``afftdn``: single methods on the degraded excerpt.

Scores (against the clean excerpt): SI-SDR improvement (dB), LSD (log10-power units, lower
is better), and a noise-floor measure: the level (dB re the clean excerpt's RMS) of the
residual ``output - clean`` in the quietest 20 % of 46 ms frames of the clean signal,
where what is heard is mostly leftover noise. Every method is also compared with the DSP
chain excerpt by excerpt (``paired_vs_dsp_chain`` in the JSON: mean difference, its standard
error, and on how many excerpts the method is better), and ``78rpm-diffusion`` with the
control (``paired_diffusion_vs_control``: what the prior itself adds).

Zero-shot tasks (no retraining): bandwidth extension of excerpts low-passed at 4 kHz
(LSD against the clean excerpt; peers: cubic-spline and polyphase (scipy) resampling
from a 2 x cutoff rate, and the input as is) and declipping of excerpts clipped at 0.3 of
their peak (SDR improvement; peers: ffmpeg ``adeclip``, archtool's DSP ``declip``).
Speed: seconds of CPU per second of audio for 10, 25 and 50 steps (1 torch thread).

Tuning (never on the corpus above): ``--dev '{"residual_scale": 10}' ...`` runs the ``78rpm``
chain and ``78rpm-diffusion`` (each JSON object overriding its diffusion step's params) on
the same kind of corpus cut from the checkpoint's *training* clips (seed ``--dev-seed`` 777).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archtool.analyze.analyzer import analyze_audio  # noqa: E402
from archtool.degrade.recipe import load_recipe  # noqa: E402
from archtool.degrade import Degrader  # noqa: E402
from archtool.metrics import lsd_db, sdr_db, si_sdr_db  # noqa: E402
from archtool.models.checkpoint import PACKAGED_DIR, load_checkpoint  # noqa: E402
from archtool.restore.chain import run_steps  # noqa: E402
from archtool.restore.plan import make_plan  # noqa: E402
from archtool.seeding import rng_for  # noqa: E402
from archtool.train.opgan import load_mono  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RATE = 22050
SNRS = (5.0, 10.0, 15.0, 20.0, 25.0)
CKPT = PACKAGED_DIR / "diffusion_music22k.pt"

Method = Callable[[np.ndarray, int], np.ndarray]


def _bench_opgan():
    spec = importlib.util.spec_from_file_location("bench_opgan", ROOT / "benchmarks" / "opgan.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def holdout_clips(meta: dict) -> list[np.ndarray]:
    dirs = {Path(d).name: Path(d) for d in meta["data"]["dirs"]}
    clips = []
    for f in meta["data"]["files"]:
        if f["split"] == "holdout":
            folder, rel = f["file"].split("/", 1)
            clips.extend(load_mono(dirs.get(folder, SHARED / folder) / rel, RATE))
    return clips


def excerpt(clips: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    while True:
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(0, len(clip) - n))
        x = clip[start:start + n].astype(np.float64)
        if np.sqrt(np.mean(x ** 2)) > 0.01:
            return (x / np.abs(x).max() * rng.uniform(0.3, 0.9)).astype(np.float32)


def noise_corpus(clips: list[np.ndarray], n: int, items: int, seed: int) -> list[dict]:
    """78rpm-degraded excerpts with the surface-noise SNR fixed per group."""
    deg = Degrader("78rpm")
    recipe = load_recipe("78rpm")
    corpus = []
    for snr in SNRS:
        for i in range(items):
            rng = rng_for(seed, f"noise/{snr}/{i}")
            clean = excerpt(clips, n, rng)
            _variant, chain = recipe.draw(rng)
            chain = [(u, {**p, "snr_db": snr} if u == "surface_noise" else p) for u, p in chain]
            degraded, labels = deg.apply_chain(clean[None], RATE, chain, rng)
            corpus.append({"snr": snr, "clean": clean, "degraded": degraded[0].astype(np.float32),
                           "units": [u["unit"] for u in labels["units"]]})
    return corpus


def noise_floor_db(clean: np.ndarray, est: np.ndarray, frame: int = 1024) -> float:
    """Residual level in the quietest 20 % of the clean signal's frames, dB re clean RMS."""
    k = len(clean) // frame
    c = clean[:k * frame].reshape(k, frame)
    r = (est[:k * frame] - clean[:k * frame]).reshape(k, frame)
    quiet = np.argsort(np.mean(c ** 2, axis=1))[: max(1, k // 5)]
    return float(10 * np.log10(np.mean(r[quiet] ** 2) / max(np.mean(clean ** 2), 1e-20) + 1e-20))


# Control for ``78rpm-diffusion``'s detection policy: the DSP chain with the surface-noise step
# planned on every item, as ``78rpm-diffusion`` plans it (``always = true``), so that what the
# prior adds is separated from what running the step on every 78 RPM item adds.
DSP_ALWAYS = 'name = "78rpm-always"\nextends = "78rpm"\n[kinds.surface_noise]\nalways = true\n'


def dsp_always_preset():
    from archtool.restore.presets import parse_preset

    return parse_preset(DSP_ALWAYS, "<benchmarks/diffusion.py: 78rpm-always>")


def preset_method(preset, steps: int | None = None, overrides: dict | None = None) -> Method:
    def run(x: np.ndarray, rate: int) -> np.ndarray:
        profile = analyze_audio(x[None], rate)
        plan = make_plan(profile, preset)
        for s in plan:
            if s.restorer == "diffusion":
                s.params["model"] = str(CKPT)
                if steps is not None:
                    s.params["steps"] = steps
                s.params.update(overrides or {})
        return run_steps(x[None], rate, plan, seed=0)[0]

    return run


def diffusion_alone(steps: int, xi: float = 0.0) -> Method:
    """The diffusion restorer by itself, with the noise measures of the item's analysis."""
    def run(x: np.ndarray, rate: int) -> np.ndarray:
        m = analyze_audio(x[None], rate).finding("noise").measures
        params = {k: m[k] for k in ("noise_psd", "noise_psd_n_fft", "noise_floor_dbfs", "snr_db") if k in m}
        y = diffusion_restorer().process(torch.from_numpy(x[None]), rate,
                                         {**params, "steps": steps, "xi": xi, "seed": 0})
        return y[0].numpy()

    return run


def score_noise(corpus: list[dict], method: Method) -> dict:
    rows = []
    cpu = 0.0
    for it in corpus:
        c0 = time.process_time()
        y = method(it["degraded"], RATE)
        cpu += time.process_time() - c0
        c, x = it["clean"], it["degraded"]
        rows.append({"snr": it["snr"], "d_si_sdr": si_sdr_db(c, y) - si_sdr_db(c, x), "lsd": lsd_db(c, y),
                     "floor": noise_floor_db(c, y), "lsd_in": lsd_db(c, x), "floor_in": noise_floor_db(c, x)})
    out = {"si_sdr_improvement_db": float(np.mean([r["d_si_sdr"] for r in rows])),
           "lsd": float(np.mean([r["lsd"] for r in rows])),
           "noise_floor_db": float(np.mean([r["floor"] for r in rows])),
           "cpu_s_per_audio_s": cpu / (len(corpus) * len(corpus[0]["clean"]) / RATE), "by_snr": {},
           "items": [{k: round(float(v), 4) for k, v in r.items()} for r in rows]}
    for snr in SNRS:
        sel = [r for r in rows if r["snr"] == snr]
        out["by_snr"][f"{snr:g}"] = {k: round(float(np.mean([r[k] for r in sel])), 3)
                                     for k in ("d_si_sdr", "lsd", "floor", "lsd_in", "floor_in")}
    return out


def paired(items: list[dict], ref: list[dict]) -> dict:
    """Per-excerpt differences ``items - ref`` (same corpus order) of SI-SDR improvement and
    LSD: mean, standard error of the mean, and on how many excerpts ``items`` is better."""
    out: dict = {"n": len(items)}
    for key, sign in (("d_si_sdr", 1.0), ("lsd", -1.0)):
        d = np.array([a[key] - b[key] for a, b in zip(items, ref)])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[key] = {"mean": round(float(d.mean()), 4), "se": round(se, 4), "better": int((sign * d > 0).sum())}
    return out


def paired_line(p: dict) -> str:
    """One printed line of a :func:`paired` result."""
    si, lsd = p["d_si_sdr"], p["lsd"]
    return (f"dSI-SDR {si['mean']:+.3f} +- {si['se']:.3f} (better on {si['better']}/{p['n']})  "
            f"LSD {lsd['mean']:+.4f} +- {lsd['se']:.4f} (better on {lsd['better']}/{p['n']})")


def diffusion_restorer():
    """The registered restorer, bound to the benchmarked checkpoint."""
    from archtool.restore.registry import get_restorer

    return get_restorer("diffusion", checkpoint=str(CKPT))


def bwe_bench(clips: list[np.ndarray], n: int, items: int, seed: int, steps: int, cutoff: float = 4000.0) -> dict:
    from scipy.interpolate import CubicSpline
    from scipy.signal import resample_poly

    from archtool.restore.registry import get_restorer

    r = diffusion_restorer()
    low_rate = int(2 * cutoff)
    res: dict[str, list[float]] = {}
    for i in range(items):
        clean = excerpt(clips, n, rng_for(seed, f"bwe/{i}"))
        low = resample_poly(clean, low_rate, RATE)  # the band-limited recording at 2 x cutoff
        up_poly = resample_poly(low, RATE, low_rate)[:n].astype(np.float32)
        t_low = np.arange(len(low)) / low_rate
        up_spline = CubicSpline(t_low, low)(np.arange(n) / RATE).astype(np.float32)
        ext = r.process(torch.from_numpy(up_poly[None]), RATE,
                        {"cutoff_hz": cutoff, "denoise": False, "steps": steps, "seed": i})[0].numpy()
        nn_bwe = get_restorer("bwe").process(torch.from_numpy(up_poly[None]), RATE,
                                             {"cutoff_hz": cutoff, "seed": i})[0].numpy()
        for name, y in (("cubic spline resampling", up_spline), ("polyphase resampling (scipy)", up_poly),
                        (f"diffusion BWE ({steps} steps)", ext), ("archtool bwe (neural, issue 10)", nn_bwe)):
            res.setdefault(name, []).append(lsd_db(clean, y))
    return {k: round(float(np.mean(v)), 3) for k, v in res.items()}


def declip_bench(clips: list[np.ndarray], n: int, items: int, seed: int, steps: int, ratio: float = 0.3) -> dict:
    from archtool.restore.registry import get_restorer

    r = diffusion_restorer()
    res: dict[str, list[float]] = {}
    spec = importlib.util.spec_from_file_location("bench_rq", ROOT / "benchmarks" / "restore_quality.py")
    rq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rq)
    for i in range(items):
        clean = excerpt(clips, n, rng_for(seed, f"declip/{i}"))
        level = ratio * float(np.abs(clean).max())
        clipped = np.clip(clean, -level, level).astype(np.float32)
        outs = {
            f"diffusion declip ({steps} steps)": r.process(torch.from_numpy(clipped[None]), RATE,
                                                           {"clip_level": level, "denoise": False, "steps": steps,
                                                            "seed": i})[0].numpy(),
            "ffmpeg adeclip": rq.run_peer("ffmpeg-adeclip", clipped[None], RATE)[0],
            "archtool declip (DSP)": get_restorer("declip").process(torch.from_numpy(clipped[None]), RATE,
                                                                   {"clip_level": level})[0].numpy(),
        }
        res.setdefault("input SDR", []).append(sdr_db(clean, clipped))
        for name, y in outs.items():
            res.setdefault(name, []).append(sdr_db(clean, y) - sdr_db(clean, clipped))
    return {k: round(float(np.mean(v)), 3) for k, v in res.items()}


def speed(seconds: float = 3.0) -> dict:
    r = diffusion_restorer()
    x = torch.from_numpy((np.random.default_rng(0).standard_normal((1, int(seconds * RATE))) * 0.05).astype(np.float32))
    out = {}
    for steps in (10, 25, 50):
        c0, t0 = time.process_time(), time.perf_counter()
        r.process(x, RATE, {"noise_gain": 0.01, "steps": steps, "seed": 0})
        out[str(steps)] = {"cpu_s_per_s": round((time.process_time() - c0) / seconds, 2),
                           "wall_s_per_s": round((time.perf_counter() - t0) / seconds, 2)}
        print(f"speed {steps} steps: {out[str(steps)]}", flush=True)
    return out


TUNE_CLIPS = ("music/tchaikovsky_sugarplum_macleod_0.flac", "music/lets_go_fishin_hobbs_0.flac")  # training clips


def tune(grid: str, steps: int) -> None:
    """Sampler settings on two excerpts of *training* clips with surface noise only (8, 15 dB).

    ``grid``: ``XI,...:START,...:CHURN,...`` (e.g. ``0,0.5:1,1.5:0,5``); prints the SI-SDR
    improvement and LSD per excerpt for every combination."""
    from archtool.degrade.recipe import parse_recipe
    from archtool.restore.diffusion import DiffusionRestorer

    r = DiffusionRestorer(checkpoint=str(CKPT))
    items = []
    for i, snr in enumerate((8.0, 15.0)):
        rng = rng_for(5, f"t{i}")
        clip = load_mono(SHARED / TUNE_CLIPS[i], RATE)[0]
        start = int(rng.integers(0, len(clip) - 66150))
        clean = clip[start:start + 66150]
        clean = (clean / np.abs(clean).max() * 0.5).astype(np.float32)
        deg, _ = Degrader(parse_recipe(f'name="t"\n[[units]]\nunit="surface_noise"\nsnr_db={snr}\n'))(clean[None], RATE, rng)
        m = analyze_audio(deg, RATE).finding("noise").measures
        params = {k: m[k] for k in ("noise_psd", "noise_psd_n_fft", "noise_floor_dbfs", "snr_db")}
        items.append((clean, deg[0].astype(np.float32), params))
    xis, starts, churns = ([float(v) for v in part.split(",")] for part in grid.split(":"))
    for xi in xis:
        for st in starts:
            for ch in churns:
                res = []
                for clean, deg, params in items:
                    y = r.process(torch.from_numpy(deg[None]), RATE, {**params, "xi": xi, "start_factor": st,
                                                                      "churn": ch, "steps": steps, "seed": 0})[0].numpy()
                    res.append((si_sdr_db(clean, y) - si_sdr_db(clean, deg), lsd_db(clean, y)))
                print(f"xi {xi:g} start {st:g} churn {ch:g} steps {steps}: dSI-SDR "
                      f"{[round(a, 2) for a, _ in res]} LSD {[round(b, 2) for _, b in res]}", flush=True)


def training_clips(meta: dict) -> list[np.ndarray]:
    """The shared/data music clips the checkpoint trained on (for tuning, never the hold-out)."""
    clips = []
    for f in meta["data"]["files"]:
        if f["split"] == "train" and f["file"].startswith("music/"):
            clips.extend(load_mono(SHARED / f["file"], RATE))
    return clips


def dev(meta: dict, n: int, items: int, seed: int, steps: int, variants: list[str]) -> None:
    """The noise benchmark's two chains on excerpts of *training* clips (tuning set): the
    ``78rpm`` DSP chain and ``78rpm-diffusion`` with each JSON object of ``variants``
    overriding its diffusion step's params; prints SI-SDR improvement and LSD."""
    corpus = noise_corpus(training_clips(meta), n, items, seed)
    methods = {"78rpm preset (DSP chain)": preset_method("78rpm"),
               "control: 78rpm DSP chain, surface-noise step always": preset_method(dsp_always_preset())}
    for v in variants:
        methods[f"78rpm-diffusion {v}"] = preset_method("78rpm-diffusion", steps, json.loads(v))
    for label, method in methods.items():
        m = score_noise(corpus, method)
        print(f"dev {label:50s} dSI-SDR {m['si_sdr_improvement_db']:+6.3f}  LSD {m['lsd']:6.3f}  "
              f"floor {m['noise_floor_db']:6.1f} dB  {m['cpu_s_per_audio_s']:6.2f} cpu s/s", flush=True)


def main() -> None:
    global CKPT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=3, help="excerpts per SNR (and for BWE / declipping)")
    ap.add_argument("--seconds", type=float, default=3.0, help="excerpt length (>= 2.4 s: surface-noise detection needs 3 turns)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--xi", type=float, default=0.1, help="guidance weight of the second 'diffusion alone' row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: noise,bwe,declip,speed,alone "
                                               "(the diffusion-alone rows of the noise table)")
    ap.add_argument("--checkpoint", type=Path, default=CKPT)
    ap.add_argument("--tune", default=None, metavar="XI:START:CHURN",
                    help="instead of the benchmark: sampler settings on training excerpts (see tune())")
    ap.add_argument("--dev", nargs="*", default=None, metavar="JSON",
                    help="instead of the benchmark: the two 78rpm chains on training-clip excerpts (seed "
                         "--dev-seed), each JSON object overriding the diffusion step's params")
    ap.add_argument("--dev-seed", type=int, default=777)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    CKPT = args.checkpoint
    if args.dev is not None:
        torch.set_num_threads(1)
        dev(load_checkpoint(CKPT)[1], int(args.seconds * RATE), args.items, args.dev_seed, args.steps,
            args.dev or ["{}"])
        return
    if args.tune:
        torch.set_num_threads(1)
        tune(args.tune, args.steps)
        return
    torch.set_num_threads(1)
    skip = set(filter(None, args.skip.split(",")))
    _, meta = load_checkpoint(CKPT)
    clips = holdout_clips(meta)
    n = int(args.seconds * RATE)
    results: dict = {"checkpoint": {"steps": meta.get("steps"), "train_hours": meta.get("train_hours"),
                                    "holdout": [f["file"] for f in meta["data"]["files"] if f["split"] == "holdout"]},
                     "items_per_snr": args.items, "seconds": args.seconds, "steps": args.steps}
    if "noise" not in skip:
        corpus = noise_corpus(clips, n, args.items, args.seed)
        bo = _bench_opgan()
        methods: dict[str, Method | None] = {
            "78rpm preset (DSP chain)": preset_method("78rpm"),
            f"78rpm-diffusion preset ({args.steps} steps)": preset_method("78rpm-diffusion", args.steps),
            "control: 78rpm DSP chain, surface-noise step always": preset_method(dsp_always_preset()),
            f"diffusion alone ({args.steps} steps, xi 0)": None if "alone" in skip else diffusion_alone(args.steps),
            f"diffusion alone ({args.steps} steps, xi {args.xi:g})":
                None if "alone" in skip else diffusion_alone(args.steps, args.xi),
            "Op-GAN (opgan_music22k)": bo.opgan_method(PACKAGED_DIR / "opgan_music22k.pt"),
            "DSP denoise alone (archtool denoise)": bo.denoise_method(),
            "noisereduce": bo.noisereduce_method(),
            "ffmpeg afftdn (tn=1)": bo.afftdn_method("tn=1"),
        }
        results["noise"] = {}
        for label, method in methods.items():
            if method is None:
                continue
            m = results["noise"][label] = score_noise(corpus, method)
            print(f"{label:40s} dSI-SDR {m['si_sdr_improvement_db']:+6.2f}  LSD {m['lsd']:5.2f}  "
                  f"floor {m['noise_floor_db']:6.1f} dB  {m['cpu_s_per_audio_s']:6.2f} cpu s/s  "
                  f"by SNR {json.dumps({k: v['d_si_sdr'] for k, v in m['by_snr'].items()})}", flush=True)
        ref = results["noise"]["78rpm preset (DSP chain)"]["items"]
        results["paired_vs_dsp_chain"] = {}
        for label, m in results["noise"].items():
            p = results["paired_vs_dsp_chain"][label] = paired(m["items"], ref)
            print(f"paired vs DSP chain: {label:40s} {paired_line(p)}", flush=True)
        # what the prior itself adds: the diffusion preset against the control (same policy)
        p = results["paired_diffusion_vs_control"] = paired(
            results["noise"][f"78rpm-diffusion preset ({args.steps} steps)"]["items"],
            results["noise"]["control: 78rpm DSP chain, surface-noise step always"]["items"])
        print(f"paired, 78rpm-diffusion vs control: {paired_line(p)}", flush=True)
    if "bwe" not in skip:
        results["bwe_lsd"] = bwe_bench(clips, n, args.items, args.seed, args.steps)
        print("BWE LSD:", results["bwe_lsd"], flush=True)
    if "declip" not in skip:
        results["declip_sdr_improvement_db"] = declip_bench(clips, n, args.items, args.seed, args.steps)
        print("declip dSDR:", results["declip_sdr_improvement_db"], flush=True)
    if "speed" not in skip:
        results["speed"] = speed()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
