"""A small learned decision layer over the hand-made detectors.

The detectors measure (SNR, residual-outlier rates, line prominences, decay times ...);
on mixtures of defects their fixed thresholds confuse one kind with another (crackle and
surface noise raise the noise floor, rumble moves the DC estimate...). This layer reads a
vector of scale-free features (:func:`feature_vector`, ``FEATURE_NAMES``) and gives, for each
kind of ``archtool.kinds.KINDS``, the probability that it is present. It is a 2-hidden-layer
MLP (about 15 k weights) trained on ``archtool degrade`` corpora; its checkpoint
(``archtool/checkpoints/analyze_detector.pt`` + ``.json`` metadata) is loaded weights-only.

The measures of every finding stay those of its detector; the layer decides ``detected``
and ``confidence`` (the detector's own verdict is kept as ``measures["rule_detected"]``).
Kinds listed in ``RULE_KINDS``, and those for which cross-validation found the rule better
(checkpoint metadata ``rule_kinds``), keep the detector's verdict.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from archtool.analyze.features import BANDS_HZ, Features
from archtool.analyze.profile import Finding
from archtool.kinds import KINDS

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "analyze_detector.pt"
RULE_KINDS = ("gaps",)
HIDDEN = 96


def _log(x: float, floor: float = 1e-6) -> float:
    return math.log10(max(float(x), floor))


def _num(v: Any, default: float = 0.0) -> float:
    if v is None:
        return default
    v = float(v)
    return v if math.isfinite(v) else default


def feature_vector(f: Features, found: dict[str, Finding]) -> tuple[np.ndarray, list[str]]:
    """Scale-free features of one file, and their names (the order is fixed)."""
    feats: dict[str, float] = {}
    m = {k: fd.measures for k, fd in found.items()}
    for k, fd in found.items():
        feats[f"rule_{k}"] = float(fd.detected)
    # noise
    feats["snr_db"] = min(_num(m["noise"]["snr_db"], 80.0), 80.0)
    feats["noise_floor_dbfs"] = max(_num(m["noise"]["noise_floor_dbfs"], -150.0), -150.0)
    feats["noise_slope"] = _num(m["noise"]["noise_slope_db_per_octave"])
    total_db = 10 * math.log10(max(f.mono_mean_square, 1e-20))
    feats["level_dbfs"] = max(total_db, -150.0)
    raw_noise = 10 * math.log10(max(float(np.sum(f.noise_psd * 2) / (f.n_fft * np.sum(np.hanning(f.n_fft) ** 2))), 1e-20))
    feats["raw_floor_rel_db"] = max(raw_noise - total_db, -100.0)
    # band structure
    fd_live = f.frame_db[f.frame_db > -110] if f.frame_db.size else np.zeros(1)
    if fd_live.size == 0:
        fd_live = np.zeros(1)
    med = float(np.median(fd_live))
    for q in (5, 25, 75, 95):
        feats[f"frame_db_p{q}_rel"] = float(np.percentile(fd_live, q)) - med
    live = f.frame_db > -110
    for b in range(len(BANDS_HZ)):
        col = f.band_db[live, b] if f.band_db.size and live.any() else np.zeros(1)
        if col.size == 0:
            col = np.zeros(1)
        feats[f"band{b}_med_rel"] = max(float(np.median(col)) - med, -100.0)
        feats[f"band{b}_p10_rel"] = max(float(np.percentile(col, 10)) - med, -100.0)
        feats[f"band{b}_spread"] = float(np.percentile(col, 90) - np.percentile(col, 10))
    pk = f.frame_peakiness[live] if f.frame_peakiness.size and live.any() else np.zeros(1)
    if pk.size == 0:
        pk = np.zeros(1)
    feats["flat_med"] = float(np.median(pk))
    feats["flat_p10"] = float(np.percentile(pk, 10))
    feats["flat_p90"] = float(np.percentile(pk, 90))
    # impulses
    from archtool.analyze.clicks import genuine_events

    dur = max(f.duration_s, 1e-6)
    ok = genuine_events(f)
    for t in (6, 10, 20, 40, 80):
        feats[f"ev_rate_{t}"] = _log(np.count_nonzero((f.click_ratio >= t) & ok) / dur, 1e-2)
        feats[f"ev_iso_rate_{t}"] = _log(np.count_nonzero((f.click_ratio >= t) & (f.click_isolation >= 3) & ok) / dur, 1e-2)
    feats["ev_med_width"] = float(np.median(f.click_width)) if f.click_width.size else 0.0
    feats["ev_med_amp"] = _log(np.median(f.click_amplitude) if f.click_amplitude.size else 0.0, 1e-3)
    # hum / rumble / low band
    feats["hum_score"] = _num(m["hum"]["score_db"])
    feats["hum_level_db"] = max(_num(m["hum"]["level_db"], -120.0), -120.0)
    feats["hum_lines"] = float(len(m["hum"]["harmonics_hz"] or []))
    feats["hum_prom"] = _num(m["hum"]["prominence_db"])
    feats["hum_mains_dev"] = min(abs(_num(m["hum"]["speed_error_percent"])), 10.0)
    feats["rumble_level_db"] = max(_num(m["rumble"]["level_db"], -120.0), -120.0)
    feats["rumble_cutoff"] = _num(m["rumble"]["cutoff_hz"], 200.0) / 100.0
    feats["rumble_lf_mid"] = max(_num(m["rumble"]["lf_to_mid_db"]), -60.0)
    feats["dc_wander_db"] = max(min(_num(m["dc_offset"]["offset_to_wander_db"]), 60.0), -60.0)
    fr, df = f.low_freqs, f.low_freqs[1] - f.low_freqs[0]
    for lo, hi in ((1, 8), (8, 16), (16, 30), (30, 45), (45, 80), (80, 160), (160, 400)):
        sel = (fr >= lo) & (fr < hi)
        p = float(np.sum(f.low_psd[sel]) * df)
        feats[f"low_{lo}_{hi}_rel"] = max(10 * math.log10(max(p, 1e-20)) - total_db, -100.0)
    # surface noise, wow, reverb, background
    feats["surf_per"] = _num(m["surface_noise"]["periodicity"])
    feats["surf_rpm_dev"] = abs(_num(m["surface_noise"]["rpm"], 78.0) - 78.0)
    feats["wow_per"] = _num(m["wow"]["periodicity"])
    feats["wow_depth"] = min(_num(m["wow"]["depth_cents"]), 200.0)
    feats["wow_rate"] = _num(m["wow"]["rate_hz"])
    feats["wow_usable"] = _num(m["wow"]["usable_fraction"])
    ws = f.wow_shift_cents[f.wow_corr >= 0.4] if f.wow_shift_cents.size else np.zeros(0)
    feats["wow_shift_mad"] = float(np.median(np.abs(ws))) if ws.size else 0.0
    feats["wow_corr_med"] = float(np.median(f.wow_corr)) if f.wow_corr.size else 0.0
    feats["rt60"] = min(_num(m["reverb"]["rt60_s"], 0.0), 5.0)
    feats["drr"] = _num(m["reverb"]["drr_db"], 0.0)
    feats["decays"] = _log(_num(m["reverb"]["decays"]) + 1.0, 1.0)
    feats["bg_excess"] = _num(m["background"]["excess_db"])
    feats["bg_spread"] = _num(m["background"]["spread_db"])
    feats["bg_level"] = max(_num(m["background"]["level_dbfs"], -120.0), -120.0)
    # band limit, clipping, DC, gaps
    feats["cut_ratio"] = _num(m["bandlimit"]["ratio"], 1.0)
    feats["cut_khz"] = _num(m["bandlimit"]["cutoff_hz"]) / 1000.0
    feats["edge_db"] = _num(m["bandlimit"]["edge_db"])
    feats["clip_frac"] = _log(_num(m["clipping"]["clipped_fraction"]), 1e-7)
    feats["clip_near"] = _log(_num(m["clipping"]["near_peak_fraction"]), 1e-7)
    feats["clip_runs"] = _log(_num(m["clipping"]["flat_runs"]) + 1.0, 1.0)
    peak = max(float(np.max(np.abs(f.peak_pos))), float(np.max(np.abs(f.peak_neg))), 1e-9)
    feats["crest_db"] = 20 * math.log10(peak) - total_db
    dc = float(np.max(np.abs(f.mean)))
    feats["dc_db"] = 20 * math.log10(max(dc, 1e-7))
    feats["dc_rel_db"] = feats["dc_db"] - total_db
    feats["gaps_count"] = _log(_num(m["gaps"]["count"]) + 1.0, 1.0)
    feats["gaps_frac"] = _num(m["gaps"]["fraction"])
    feats["rate_khz"] = f.sample_rate / 1000.0
    feats["channels"] = float(f.channels)
    names = list(feats)
    return np.asarray([feats[n] for n in names], dtype=np.float32), names


def build_model(n_in: int, n_out: int = len(KINDS)):
    import torch
    from torch import nn

    class DetectorNet(nn.Module):
        """Standardise, then MLP -> one logit per kind."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_in))
            self.register_buffer("std", torch.ones(n_in))
            self.net = nn.Sequential(nn.Linear(n_in, HIDDEN), nn.GELU(), nn.Dropout(0.1),
                                     nn.Linear(HIDDEN, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, n_out))

        def forward(self, x):
            return self.net((x - self.mean) / self.std)

    return DetectorNet()


@lru_cache(maxsize=1)
def load_default():
    """``(model, meta)`` from the shipped checkpoint, or None when it is not installed."""
    if not CHECKPOINT.exists():
        return None
    from archtool.models.checkpoint import load_checkpoint

    state, meta = load_checkpoint(CHECKPOINT)
    model = build_model(len(meta["feature_names"]), len(meta["kinds"]))
    model.load_state_dict(state)
    model.eval()
    model.requires_grad_(False)  # inference only; never switch autograd off process-wide
    return model, meta


def probabilities(vec: np.ndarray, names: list[str]) -> dict[str, float] | None:
    """P(kind present) from the shipped model; None (with a warning when stale) when no
    checkpoint matching these features is installed."""
    loaded = load_default()
    if loaded is None:
        return None
    import torch

    model, meta = loaded
    if list(meta["feature_names"]) != list(names):
        import warnings

        warnings.warn(f"{CHECKPOINT}: its features differ from this version's; the detectors' own "
                      "thresholds decide (retrain with python -m archtool.analyze.train_detector)")
        return None
    with torch.no_grad():
        logits = model(torch.from_numpy(vec[None].astype(np.float32)))[0].numpy()
    th = meta.get("thresholds", {})
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    out = {}
    for k, p in zip(meta["kinds"], probs):
        if k in meta.get("rule_kinds", ()):
            continue
        # re-centre so that the tuned threshold maps to 0.5
        t = float(th.get(k, 0.5))
        out[k] = float(0.5 * p / t) if p < t else float(0.5 + 0.5 * (p - t) / max(1 - t, 1e-9))
    return out


def apply(found: dict[str, Finding], probs: dict[str, float]) -> None:
    """Set ``detected``/``confidence`` from ``probs`` (in place), keeping measures."""
    for k, fd in found.items():
        if k in RULE_KINDS or k not in probs:
            continue
        p = probs[k]
        fd.measures["rule_detected"] = bool(fd.detected)
        fd.measures["probability"] = round(p, 4)
        fd.detected = bool(p >= 0.5)
        fd.confidence = float(abs(p - 0.5) * 2.0) * 0.5 + 0.5
        if fd.detected and fd.severity <= 0.0:
            fd.severity = 0.05
        if not fd.detected:
            fd.severity = 0.0
