"""Gap inpainting benchmark on held-out clips (speech 16 kHz, music 22.05 kHz).

Part 1 -- waveform gaps. For gap lengths 10, 25, 50, 100, 200, 400 ms, gaps are cut
at seeded positions inside non-silent passages of the held-out clips (the files
``archtool train inpaint`` held out: every 5th of the sorted folder) and filled by

- ``zero``: leave the dropout silent;
- ``linear``: a straight line between the last and first known samples;
- ``ar``: Janssen AR interpolation (:func:`archtool.dsp.janssen.ar_fill`);
- ``unet``: the U-Net path (model magnitudes, AR phase initialisation, gap-only fast
  Griffin-Lim); ``unet_plain_gl``: the same magnitudes with plain Griffin-Lim from
  random phase (the phase-reconstruction comparison);
- ``combined``: the restorer's own choice (:func:`archtool.restore.inpaint.inpaint`, method
  ``auto``: a copy of the passage where the gap's surroundings recur, when they recur closely
  enough (``exemplar``); else AR where the surroundings are steady (``ar_steady``); else the
  recipe of ``AUTO_RECIPES`` for the model and gap length -- Janssen
  AR, the Janssen fill topped up to a floor of the U-Net's magnitudes, the U-Net
  magnitudes with Griffin-Lim started from the Janssen fill and AR cross-fades at the edges,
  or that fill blended per STFT bin with the Janssen fill (``spectral_blend``)).

Measures (means over gaps): SNR inside the gap (dB); LSD (log10 power units,
``archtool.metrics.lsd_db`` with 32 ms windows, 8 ms hop) over the gap plus 32 ms on
each side; spectrogram-patch PSNR (``archtool.metrics.spectral_psnr_db``: seed 001's
linear-magnitude PSNR, 254-point FFT, hop 64, at 16 kHz) over the 128-frame
(512 ms) patch centred on the gap -- music is resampled to 16 kHz for this one.

Part 2 -- seed 001's fragmentation protocol: 16 kHz magnitude spectrograms (256-sample
Hann window, hop 64, 128 bins), cut into 128x128 patches, 10-70 % of the frames of
each patch zeroed at random; PSNR of the patch (linear magnitude, peak of the clean
patch) for the zeroed input, per-bin linear interpolation of log-magnitude across
missing frames, and the U-Net. Two normalisations are reported because seed 001's
exact one is not published with its numbers: ``psnr_linear_db`` (linear magnitude,
peak of the clean patch) and ``psnr_db01_db`` (dB magnitude, the clean patch's top
80 dB mapped to [0, 1], data range 1). Seed 001 reports 12.9 dB on FMA music at 16 kHz.

Tuning (``--tune``): the same gap protocol on the *training* clips (``--tune-positions``
gaps per clip and length, 3 by default, seeded apart from the benchmark's by
``--tune-seed``), comparing candidate recipes (:func:`tune_candidates`) against the
single methods; the candidate kept per length is
the one with the most measures at least as good as the best single method, then the
smallest total shortfall, then the first listed (:func:`choose`; ``ar`` first). Per length
it also prints a clip-fold check (:func:`fold_check`: choose on half the training clips,
count the measures met on the other half). ``AUTO_RECIPES`` was set from this table; the
held-out clips were never used to choose.

Diagnostic (``--oracle``): every gap is also filled with the clean signal's own magnitudes
and our phase reconstruction (:data:`ORACLES`), showing how much of a shortfall is the
predicted magnitudes and how much the phase. Never a method, never in the target cells.

Usage: ``python benchmarks/inpaint.py [--positions 4] [--json out.json] [--tune] [--oracle]``
(single-threaded; a few CPU minutes, ``--tune`` about 10x longer).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # single-threaded BLAS before numpy loads

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archtool.audio.io import read_audio  # noqa: E402
from archtool.dsp.janssen import ar_fill  # noqa: E402
from archtool.metrics import lsd_db, snr_db, spectral_psnr_db  # noqa: E402
from archtool.models.checkpoint import PACKAGED_DIR  # noqa: E402
from archtool.models.unet_inpaint import SpecConfig, known_rms, stft, to_features, from_features  # noqa: E402
from archtool.restore.inpaint import (AUTO_RECIPES, PACKAGED_MODELS, Recipe, UNetFiller, ar_order_bounded,  # noqa: E402
                                      finish_fill, inpaint, unet_base_fill)
from archtool.seeding import rng_for  # noqa: E402
from archtool.train.inpaint import fragment_mask, list_audio, split_files  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
LENGTHS_MS = (10, 25, 50, 100, 200, 400)
METHODS = ("zero", "linear", "ar", "unet", "unet_plain_gl", "combined")
# --oracle: the clean signal's own magnitudes in the gap, with the ``unet`` column's phase
# reconstruction (gap-only fast Griffin-Lim from the bidirectional AR prediction) or started
# from the Janssen fill. Not methods (they read the answer): how far phase alone gets.
ORACLES = ("oracle_mag", "oracle_mag_janssen")
# (floor, projections) of the top-up candidates
TUNE_TOPUPS = ((0.3, 0), (0.5, 0), (0.7, 0), (1.0, 0), (0.5, 4), (0.7, 4), (1.0, 4))
# the blend candidates: lam x loud x keep_ar x coherence_power
TUNE_BLENDS = [(lam, loud, keep, power) for lam in (0.25, 0.5, 1.0, 2.0) for loud in (1.0, 3.0, 10.0)
               for keep in (False, True) for power in (1.0, 0.5)]
# edge-anchored magnitudes (Recipe.anchor_ms): the U-Net recipe, the ramp-free U-Net from the
# Janssen fill, and a few blends on top of an anchored fill
TUNE_ANCHORS = (5.0, 10.0, 20.0, 40.0)
TUNE_ANCHORED_BLENDS = ((0.25, 1.0, True, 10.0), (0.25, 1.0, True, 20.0), (0.25, 10.0, False, 20.0),
                        (1.0, 10.0, False, 20.0), (2.0, 1.0, False, 20.0))


def load_mono(path: Path, rate: int) -> np.ndarray:
    audio, sr = read_audio(path)
    x = torch.from_numpy(audio).mean(0)
    if sr != rate:
        x = torchaudio.functional.resample(x, sr, rate)
    return x.double().numpy()


def to16k(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == 16000:
        return x
    return torchaudio.functional.resample(torch.from_numpy(x).float(), rate, 16000).double().numpy()


def pick_positions(x: np.ndarray, rate: int, gap: int, count: int, rng: np.random.Generator) -> list[int]:
    """Gap starts with >= 0.3 s of context and a gap RMS of at least 30 % of the clip's."""
    margin = int(0.3 * rate)
    clip_ms = np.mean(x ** 2)
    out: list[int] = []
    for _ in range(2000):
        if len(out) == count:
            break
        s = int(rng.integers(margin, x.shape[0] - gap - margin))
        if np.mean(x[s:s + gap] ** 2) >= 0.09 * clip_ms and all(abs(s - o) > gap + rate // 10 for o in out):
            out.append(s)
    return out


def tune_candidates() -> dict[str, Recipe]:
    """The recipes ``--tune`` compares (the ``auto`` table is chosen among these): Janssen AR,
    the U-Net recipe, the U-Net's magnitudes on the Janssen fill's phase, top-ups, the
    plain U-Net method, spectral blends (:data:`TUNE_BLENDS`) and edge-anchored magnitudes
    (:data:`TUNE_ANCHORS`, :data:`TUNE_ANCHORED_BLENDS`)."""
    cands = {"ar": Recipe("ar"), "unet_r10": Recipe("unet", ar_ramp_ms=10.0),
             "unet_mag_ar_phase": Recipe("ar_topup", floor=1.0, ceiling=1.0, iterations=0, ar_ramp_ms=10.0)}
    for floor, its in TUNE_TOPUPS:
        cands[f"topup{floor:g}_p{its}"] = Recipe("ar_topup", floor=floor, iterations=its, ar_ramp_ms=10.0)
    # the plain U-Net method itself (a chosen-by-length combination may pick a single method)
    cands["unet_as_single"] = Recipe("unet", init="extrapolate", ar_ramp_ms=0.0)
    for lam, loud, keep, power in TUNE_BLENDS:
        cands[f"blend_l{lam:g}_t{loud:g}{'_keep' if keep else ''}_p{power:g}"] = Recipe(
            "blend", lam=lam, loud=loud, keep_ar=keep, coherence_power=power)
    for tau in TUNE_ANCHORS:
        cands[f"unet_r10_anchor{tau:g}"] = Recipe("unet", ar_ramp_ms=10.0, anchor_ms=tau)
        cands[f"unet_r0_anchor{tau:g}"] = Recipe("unet", ar_ramp_ms=0.0, anchor_ms=tau)
    for lam, loud, keep, tau in TUNE_ANCHORED_BLENDS:
        cands[f"blend_l{lam:g}_t{loud:g}{'_keep' if keep else ''}_anchor{tau:g}"] = Recipe(
            "blend", lam=lam, loud=loud, keep_ar=keep, anchor_ms=tau)
    return cands


TIE_TOLERANCE = 1e-6  # dB / LSD units: below this, combined and a single method are the same fill
MEASURES = (("snr_db", 1.0), ("lsd", -10.0), ("patch_psnr_db", 1.0))  # sign/scale: larger margin = better


def margins(res: dict[str, dict[str, float]], singles: tuple[str, ...], name: str) -> list[float]:
    """A candidate's margins over the best single method per measure (SNR dB, LSD x10, PSNR dB)."""
    return [w * (res[name][k] - max((res[m][k] for m in singles), key=lambda v: w * v)) for k, w in MEASURES]


def choose(res: dict[str, dict[str, float]], singles: tuple[str, ...], cands: list[str]) -> str:
    """The candidate to use: the most measures at least as good as the best single method,
    then the smallest total shortfall (margins below 0 summed: SNR dB, LSD x10, PSNR dB),
    then the first listed (``ar`` first: a tie keeps the simplest recipe). This rule scored
    best in a clip-fold cross-validation on the training clips (:func:`fold_check`) against
    "then the largest worst margin" and lower-confidence-bound variants."""
    def key(i_name: tuple[int, str]) -> tuple[int, float, int]:
        i, name = i_name
        m = margins(res, singles, name)
        return sum(v >= 0 for v in m), sum(min(v, 0.0) for v in m), -i

    return max(enumerate(cands), key=key)[1]


def fold_check(rows: dict[str, list[dict[str, float]]], clips: list[str], singles: tuple[str, ...],
               cands: list[str], repeats: int = 4) -> float:
    """Expected measures met (of 3) when :func:`choose` picks on half the training clips and is
    scored on the other half (``repeats`` random clip splits, both directions)."""
    names = sorted(set(clips))
    met = []
    for rep in range(repeats):
        perm = np.random.default_rng(rep).permutation(names)
        half = set(perm[: len(names) // 2])
        a = [i for i, c in enumerate(clips) if c in half]
        b = [i for i, c in enumerate(clips) if c not in half]
        for tr, te in ((a, b), (b, a)):
            mean = lambda idx: {m: {k: float(np.mean([rows[m][i][k] for i in idx])) for k, _ in MEASURES}  # noqa: E731
                                for m in (*singles, *cands)}
            pick = choose(mean(tr), singles, cands)
            met.append(sum(v >= 0 for v in margins(mean(te), singles, pick)))
    return float(np.mean(met))


def tune(domain: str, rate: int, filler: UNetFiller, positions: int, seed: int) -> dict:
    """Compare candidate recipes on the *training* clips (never the held-out ones)."""
    files = split_files(list_audio(DATA / domain), 5)[0]
    clips = {f.stem: load_mono(f, rate) for f in files}
    cands = tune_candidates()
    singles = ("zero", "linear", "ar", "unet", "unet_plain_gl")
    table: dict[str, dict] = {}
    for ms in LENGTHS_MS:
        gap = int(round(ms * rate / 1000))
        acc: dict[str, list[dict[str, float]]] = {m: [] for m in (*singles, *cands)}
        gap_clips: list[str] = []
        for name, x in clips.items():
            for s in pick_positions(x, rate, gap, positions, rng_for(seed, f"tune/{domain}/{name}/{ms}")):
                e = s + gap
                # a window around the gap keeps the measures local and the fills cheap
                w = int(0.35 * rate)
                lo, hi = max(0, s - w), min(x.shape[0], e + w)
                xw, ls, le = x[lo:hi], s - lo, e - lo
                damaged = xw.copy()
                damaged[ls:le] = 0.0
                gaps = {"zero": np.zeros(gap), "linear": np.linspace(xw[ls - 1], xw[le], gap + 2)[1:-1],
                        "unet": filler.fill(damaged, ls, le, rate),
                        "unet_plain_gl": filler.fill(damaged, ls, le, rate, phase="plain")}
                # what inpaint(..., recipe=r) computes, with the Janssen fill shared by all candidates
                ar = ar_fill(damaged, ls, le, rate, order=ar_order_bounded(gap, rate))
                gaps["ar"] = ar_fill(damaged, ls, le, rate)
                bases: dict[tuple, np.ndarray] = {}  # the network's fills, shared by recipes that differ after it
                for cname, r in cands.items():
                    if r.kind != "ar":
                        key = ("unet" if r.kind == "blend" else r.kind, r.init, r.iterations, r.floor, r.ceiling,
                               r.anchor_ms)
                        if key not in bases:
                            bases[key] = unet_base_fill(filler, damaged, ls, le, rate, r, ar)
                        gaps[cname] = finish_fill(ar, bases[key], rate, r)
                for m, fill in gaps.items():
                    y = damaged.copy()
                    y[ls:le] = fill
                    acc[m].append(measure(xw, y, ls, le, rate))
                gap_clips.append(name)
        res = {m: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for m, rows in acc.items()}
        pick = choose(res, singles, list(cands))
        check = fold_check(acc, gap_clips, singles, list(cands))
        table[str(ms)] = {"results": res, "chosen": pick, "gaps": len(gap_clips),
                          "margins": margins(res, singles, pick), "fold_check_met": check}
        print(f"tune {domain} {ms} ms ({len(gap_clips)} gaps): chosen {pick}, margins "
              + "/".join(f"{v:+.3f}" for v in margins(res, singles, pick)) + f", fold check {check:.2f}/3; "
              + ", ".join(f"{m} {v['snr_db']:.2f}/{v['lsd']:.3f}/{v['patch_psnr_db']:.2f}" for m, v in res.items()),
              flush=True)
    return {"tuning_clips": [f.name for f in files], "by_length_ms": table}


def fill_methods(x: np.ndarray, s: int, e: int, rate: int, filler: UNetFiller,
                 oracle: bool = False, chosen: list[str] | None = None) -> dict[str, np.ndarray]:
    """Each method's full restored signal (1-D) for the gap ``[s, e)`` (and the :data:`ORACLES`);
    ``chosen`` (optional) receives the method ``combined`` used (``exemplar``, ``ar_steady``, ...)."""
    damaged = x.copy()
    damaged[s:e] = 0.0
    res = {"zero": damaged}
    lin = damaged.copy()
    lin[s:e] = np.linspace(x[s - 1], x[e], e - s + 2)[1:-1]
    res["linear"] = lin
    ar = damaged.copy()
    ar[s:e] = ar_fill(damaged, s, e, rate)
    res["ar"] = ar
    for name, phase in (("unet", "gap"), ("unet_plain_gl", "plain")):
        u = damaged.copy()
        u[s:e] = filler.fill(damaged, s, e, rate, phase=phase)
        res[name] = u
    comb, recs = inpaint(damaged[None].astype(np.float32), rate, [[s / rate, e / rate]], filler=filler)
    res["combined"] = comb[0].astype(np.float64)
    if chosen is not None:
        chosen.append(recs[0]["method"])
    if oracle:
        for name, init in (("oracle_mag", None), ("oracle_mag_janssen", ar[s:e])):
            o = damaged.copy()
            o[s:e] = filler.fill(damaged, s, e, rate, init=init, magnitudes_from=x)
            res[name] = o
    return res


def measure(x: np.ndarray, y: np.ndarray, s: int, e: int, rate: int) -> dict[str, float]:
    n_fft, hop = int(0.032 * rate), int(0.008 * rate)
    a, b = max(0, s - n_fft), min(x.shape[0], e + n_fft)
    x16, y16 = to16k(x, rate), to16k(y, rate)
    c = int((s + e) / 2 * 16000 / rate)
    half = 64 * 64
    p0 = max(0, c - half)
    p1 = min(x16.shape[0], p0 + 2 * half)
    return {"snr_db": snr_db(x[s:e], y[s:e]),
            "lsd": lsd_db(x[a:b], y[a:b], n_fft=n_fft, hop=hop),
            "patch_psnr_db": spectral_psnr_db(x16[p0:p1], y16[p0:p1])}


def gap_benchmark(domain: str, rate: int, filler: UNetFiller, positions: int, seed: int,
                  oracle: bool = False) -> dict:
    files = split_files(list_audio(DATA / domain), 5)[1]
    clips = {f.stem: load_mono(f, rate) for f in files}
    table: dict[str, dict[str, dict[str, float]]] = {}
    for ms in LENGTHS_MS:
        gap = int(round(ms * rate / 1000))
        acc: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS + (ORACLES if oracle else ())}
        chosen: list[str] = []
        for name, x in clips.items():
            for s in pick_positions(x, rate, gap, positions, rng_for(seed, f"{domain}/{name}/{ms}")):
                for method, y in fill_methods(x, s, s + gap, rate, filler, oracle, chosen).items():
                    acc[method].append(measure(x, y, s, s + gap, rate))
        table[str(ms)] = {m: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"gaps": len(rows)}
                          for m, rows in acc.items()}
        # which method ``combined`` used on how many gaps (the recipe's, or a guard's: exemplar, ar_steady)
        table[str(ms)]["combined_methods"] = {m: chosen.count(m) for m in sorted(set(chosen))}
        # paired differences, combined minus each single method: mean and standard error over gaps
        table[str(ms)]["paired"] = {
            m: {k: [float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(len(d)))]
                for k in acc[m][0]
                for d in [np.array([c[k] - r[k] for c, r in zip(acc["combined"], acc[m])])]}
            for m in METHODS if m != "combined"}
        print(f"{domain} {ms} ms: " + ", ".join(f"{m} {v['snr_db']:.2f}/{v['lsd']:.3f}/{v['patch_psnr_db']:.2f}"
                                               for m, v in table[str(ms)].items() if m in METHODS + ORACLES)
              + f"; combined used {table[str(ms)]['combined_methods']}", flush=True)
    return {"held_out": [f.name for f in files], "by_length_ms": table}


def _psnr(ref: np.ndarray, est: np.ndarray) -> float:
    """Linear-magnitude PSNR, peak of the clean patch (archtool.metrics' convention)."""
    return float(10 * np.log10(ref.max() ** 2 / max(np.mean((ref - est) ** 2), 1e-30)))


def _psnr_db01(ref: np.ndarray, est: np.ndarray, dyn_db: float = 80.0) -> float:
    """PSNR of dB-magnitude patches mapped to [0, 1] (clean patch's top ``dyn_db`` dB), range 1."""
    top = 20 * np.log10(ref.max() + 1e-12)

    def norm(m: np.ndarray) -> np.ndarray:
        return np.clip((20 * np.log10(m + 1e-12) - top + dyn_db) / dyn_db, 0.0, 1.0)

    return float(10 * np.log10(1.0 / max(np.mean((norm(ref) - norm(est)) ** 2), 1e-30)))


def _interp_log(mag: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-bin linear interpolation of log-magnitude across missing frames (edges held)."""
    known = np.flatnonzero(mask > 0.5)
    out = mag.copy()
    if known.size == 0:
        return out
    lm = np.log(mag[:, known] + 1e-8)
    t = np.arange(mag.shape[1])
    for f in range(mag.shape[0]):
        out[f] = np.exp(np.interp(t, known, lm[f])) - 1e-8
    return np.where(mask[None] > 0.5, mag, np.clip(out, 0, None))


@torch.no_grad()
def fragmentation_benchmark(domain: str, filler: UNetFiller, seed: int) -> dict:
    """Seed 001's 10-70 % frame fragmentation on 128x128 patches of 16 kHz spectrograms."""
    spec = SpecConfig(16000, 256, 64)
    files = split_files(list_audio(DATA / domain), 5)[1]
    scores: dict[str, list[tuple[float, float]]] = {"zeroed": [], "log_interp": [], "unet": []}
    model_rate = filler.spec.sample_rate
    for f in files:
        x = load_mono(f, 16000)
        mag = stft(torch.from_numpy(x).float(), spec).abs()[:128].numpy()
        rng = rng_for(seed, f"fragment/{domain}/{f.stem}")
        for p in range(mag.shape[1] // 128):
            patch = mag[:, p * 128:(p + 1) * 128]
            if patch.max() <= 0:
                continue
            mask = fragment_mask(rng, 128)
            zeroed = patch * mask[None]
            interp = _interp_log(patch, mask)
            scores["zeroed"].append((_psnr(patch, zeroed), _psnr_db01(patch, zeroed)))
            scores["log_interp"].append((_psnr(patch, interp), _psnr_db01(patch, interp)))
            if model_rate == 16000 and filler.spec.n_fft == 256 and filler.spec.hop == 64:
                m = torch.from_numpy(mask)[None]
                mg = torch.from_numpy(zeroed)[None]
                ref = known_rms(mg, m)
                pred = from_features(filler.model.predict(to_features(mg, ref), m), ref)[0].numpy()
                scores["unet"].append((_psnr(patch, pred), _psnr_db01(patch, pred)))
    return {k: {"psnr_linear_db": float(np.mean([a for a, _ in v])),
                "psnr_db01_db": float(np.mean([b for _, b in v])), "patches": len(v)}
            for k, v in scores.items() if v}


def to_markdown(out: dict) -> str:
    """Tables for benchmarks/RESULTS.md: one per domain (rows: length; cells: SNR / LSD / PSNR)."""
    lines = []
    singles = ("zero", "linear", "ar", "unet", "unet_plain_gl")
    for domain in ("speech", "music"):
        if domain not in out:
            continue
        d = out[domain]
        lines.append(f"**{domain}** (held out: {', '.join(d['held_out'])}); cell = SNR in gap dB / LSD / patch PSNR dB")
        lines.append("")
        lines.append("| gap | n | " + " | ".join(METHODS) + " |")
        lines.append("|---|---|" + "---|" * len(METHODS))
        for ms, row in d["by_length_ms"].items():
            cells = [f"{row[m]['snr_db']:.2f} / {row[m]['lsd']:.3f} / {row[m]['patch_psnr_db']:.2f}" for m in METHODS]
            lines.append(f"| {ms} ms | {row['zero']['gaps']} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"{domain}: combined vs the best single method (which one, and the paired difference "
                     "combined minus it, mean +- standard error over gaps); met = at least as good")
        lines.append("")
        lines.append("| gap | SNR dB | LSD | patch PSNR dB | met | combined used |")
        lines.append("|---|---|---|---|---|---|")
        for ms, row in d["by_length_ms"].items():
            cells, met = [], 0
            for key, sign, fmt in (("snr_db", 1, ".2f"), ("lsd", -1, ".3f"), ("patch_psnr_db", 1, ".2f")):
                best = max(singles, key=lambda m: sign * row[m][key])
                c = row["combined"][key]
                # differences below 1e-6 are the float32 rounding of the restored output: a tie
                ok = sign * (c - row[best][key]) >= -TIE_TOLERANCE
                met += ok
                diff, se = row["paired"][best][key]
                cells.append(f"{c:{fmt}} vs {row[best][key]:{fmt}} ({best}; {diff:+{fmt}} +- {se:{fmt}})"
                             f"{'' if ok else ' short'}")
            used = ", ".join(f"{m} {c}" for m, c in row.get("combined_methods", {}).items())
            lines.append(f"| {ms} ms | " + " | ".join(cells) + f" | {met}/3 | {used} |")
        lines.append("")
        if all(o in row for row in d["by_length_ms"].values() for o in ORACLES):
            lines.append(f"{domain}, diagnostic (--oracle): the clean signal's magnitudes in the gap with our "
                         "phase reconstruction; SNR dB / LSD / patch PSNR dB")
            lines.append("")
            lines.append("| gap | ar | unet | " + " | ".join(ORACLES) + " |")
            lines.append("|---|---|---|" + "---|" * len(ORACLES))
            for ms, row in d["by_length_ms"].items():
                cells = [f"{row[m]['snr_db']:.2f} / {row[m]['lsd']:.3f} / {row[m]['patch_psnr_db']:.2f}"
                         for m in ("ar", "unet") + ORACLES]
                lines.append(f"| {ms} ms | " + " | ".join(cells) + " |")
            lines.append("")
        fr = d.get("fragmentation", {})
        if fr:
            lines.append(f"{domain}, seed-001 fragmentation (10-70 % of frames, 128x128 patches at 16 kHz, "
                         f"{fr['zeroed']['patches']} patches): PSNR linear-magnitude / dB-[0,1]")
            lines.append("")
            lines.append("| input | " + " | ".join(fr) + " |")
            lines.append("|---|" + "---|" * len(fr))
            lines.append("| PSNR dB | " + " | ".join(f"{v['psnr_linear_db']:.2f} / {v['psnr_db01_db']:.2f}"
                                                     for v in fr.values()) + " |")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", type=int, default=4, help="gaps per held-out clip and length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speech-ckpt", type=Path, default=PACKAGED_DIR / PACKAGED_MODELS["speech16k"])
    ap.add_argument("--music-ckpt", type=Path, default=PACKAGED_DIR / PACKAGED_MODELS["music22k"])
    ap.add_argument("--domains", default="speech,music")
    ap.add_argument("--tune", action="store_true",
                    help="compare candidate recipes on the training clips (--tune-positions gaps per clip and "
                         "length, --tune-seed) instead of benchmarking the held-out clips")
    ap.add_argument("--tune-positions", type=int, default=3,
                    help="with --tune: gaps per training clip and length (more gaps, steadier choices)")
    ap.add_argument("--tune-seed", type=int, default=1, help="with --tune: seed of the gap positions")
    ap.add_argument("--oracle", action="store_true",
                    help="also fill every gap with the clean signal's magnitudes and our phase reconstruction "
                         "(a diagnostic of the phase's limit; not a method, never in the target cells)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    out: dict = {"machine": f"{platform.machine()}, {platform.python_version()}, torch {torch.__version__}",
                 "auto_recipes": {k: [[b, r.__dict__] for b, r in v] for k, v in AUTO_RECIPES.items()},
                 "seed": args.seed, "positions_per_clip": args.positions}
    speech = UNetFiller.load(args.speech_ckpt)
    for domain in args.domains.split(","):
        filler = speech if domain == "speech" else UNetFiller.load(args.music_ckpt)
        rate = 16000 if domain == "speech" else 22050
        if args.tune:
            out[domain] = tune(domain, rate, filler, args.tune_positions, args.tune_seed)
            continue
        out[domain] = gap_benchmark(domain, rate, filler, args.positions, args.seed, args.oracle)
        out[domain]["fragmentation"] = fragmentation_benchmark(domain, speech, args.seed)
        print(f"{domain} fragmentation (speech16k model): {out[domain]['fragmentation']}", flush=True)
    out["time_s"] = round(time.time() - t0, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=float))
    if not args.tune:
        print(to_markdown(out))
    print(f"done in {out['time_s']} s")


if __name__ == "__main__":
    main()
