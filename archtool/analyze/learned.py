"""A small learned decision layer over the hand-made detectors.

The detectors measure (SNR, residual-outlier rates, line prominences, decay times ...);
on mixtures of defects their fixed thresholds confuse one kind with another (crackle and
surface noise raise the noise floor, rumble moves the DC estimate...). This layer reads a
vector of scale-free features (:func:`feature_vector`) and gives, for each kind of
``archtool.kinds.KINDS``, the probability that it is present, plus an estimate of the
broadband noise's SNR. It is the mean of a few 2-hidden-layer MLPs trained on
``archtool degrade`` corpora (:mod:`archtool.analyze.train_detector`); its checkpoint
(``archtool/checkpoints/analyze_detector.pt`` + ``.json`` metadata) is mirrored as plain
arrays in ``analyze_detector.npz`` (checked against the .pt's sha256), so inference is a
numpy forward pass and analysis never imports torch. Where the metadata's ``trees.combine``
says so, a kind's probability comes from gradient-boosted trees (:mod:`archtool.analyze.trees`,
``analyze_detector_trees.npz``), alone or averaged with the MLPs'; the SNR stays the MLPs'.

Most measures of a finding stay those of its detector; the layer decides ``detected`` and
``confidence`` (the detector's own verdict is kept as ``measures["rule_detected"]``). Kinds in
``RULE_KINDS``, those for which validation found the rule better (checkpoint metadata
``rule_kinds``), and findings resting on an exact measurement (:func:`rule_certain`) keep
the detector's verdict. The noise finding reports the learned SNR as ``snr_db`` (the
detector's figure stays as ``snr_db_detector``).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from archtool.analyze._util import ramp
from archtool.analyze.features import BANDS_HZ, SLOPE_EDGES, Features, hann
from archtool.analyze.profile import Finding
from archtool.kinds import KINDS

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "analyze_detector.pt"
RULE_KINDS = ("gaps",)
SNR_CENTRE_DB, SNR_SCALE_DB = 20.0, 8.0  # standardisation of the noise-SNR output
SNR_MIN_PROBABILITY = 0.02  # raw P(noise) from which the learned SNR replaces the detector's
FEATURE_VERSION = 9  # bump when feature_vector changes (training caches are keyed by it)
OCTAVES_HZ = (62, 125, 250, 500, 1000, 2000, 4000, 8000)
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
    # noise colour (octave levels of the noise spectrum re its total) and per-octave SNR
    psd = np.asarray(f.noise_psd, dtype=np.float64)
    mp = np.asarray(f.mean_power, dtype=np.float64)
    nz_tot = float(np.sum(psd)) + 1e-30
    for lo in OCTAVES_HZ:
        sel = (f.freqs >= lo) & (f.freqs < 2 * lo)
        if sel.any() and 2 * lo <= f.sample_rate / 2 * 1.01:
            pn, ps = float(np.sum(psd[sel])), float(np.sum(mp[sel]))
            feats[f"nz_oct{lo}_rel"] = max(10 * math.log10(pn / nz_tot + 1e-30), -80.0)
            feats[f"snr_oct{lo}"] = min(max(10 * math.log10((ps + 1e-30) / (pn + 1e-30)), -10.0), 60.0)
        else:
            feats[f"nz_oct{lo}_rel"] = -80.0
            feats[f"snr_oct{lo}"] = 0.0
    # band structure
    fd_live = f.frame_db[f.frame_db > -110] if f.frame_db.size else np.zeros(1)
    if fd_live.size == 0:
        fd_live = np.zeros(1)
    med = float(np.median(fd_live))
    for q in (5, 25, 75, 95):
        feats[f"frame_db_p{q}_rel"] = float(np.percentile(fd_live, q)) - med
    live = f.frame_db > -110
    wss = float(np.sum(hann(f.n_fft)[0].astype(np.float64) ** 2))
    for b in range(len(BANDS_HZ)):
        col = f.band_db[live, b] if f.band_db.size and live.any() else np.zeros(1)
        if col.size == 0:
            col = np.zeros(1)
        feats[f"band{b}_med_rel"] = max(float(np.median(col)) - med, -100.0)
        feats[f"band{b}_p10_rel"] = max(float(np.percentile(col, 10)) - med, -100.0)
        feats[f"band{b}_spread"] = float(np.percentile(col, 90) - np.percentile(col, 10))
        lo, hi = BANDS_HZ[b]
        sel = (f.freqs >= lo) & (f.freqs < hi)
        floor_b = 10 * math.log10(float(np.sum(f.noise_psd[sel] * 2)) / (f.n_fft * wss) + 1e-20) if sel.any() else -200.0
        feats[f"band{b}_q20_over_floor"] = min(max(float(np.percentile(col, 20)) - floor_b, -20.0), 80.0)
        feats[f"band{b}_q5_over_floor"] = min(max(float(np.percentile(col, 5)) - floor_b, -20.0), 80.0)
    # stationarity of the quietest quarter of the frames: a steady noise floor keeps their
    # level and band balance fixed; a mixed-in ambience does not
    fdl = f.frame_db[live] if live.any() else np.zeros(0)
    q = fdl <= np.percentile(fdl, 25) if fdl.size >= 8 else np.zeros(fdl.size, dtype=bool)
    if np.count_nonzero(q) >= 4:
        bq = f.band_db[live][q]
        feats["quiet_level_std"] = min(float(np.std(fdl[q])), 30.0)
        for b in range(len(BANDS_HZ)):
            feats[f"quiet_band{b}_std"] = min(float(np.std(bq[:, b])), 30.0)
        feats["quiet_shape_std"] = min(float(np.mean(np.std(bq - fdl[q][:, None], axis=0))), 30.0)
        pkq = f.frame_peakiness[live][q]
        feats["quiet_flat_med"] = float(np.median(pkq))
        feats["quiet_flat_std"] = float(np.std(pkq))
    else:
        feats["quiet_level_std"] = 0.0
        for b in range(len(BANDS_HZ)):
            feats[f"quiet_band{b}_std"] = 0.0
        feats["quiet_shape_std"] = 0.0
        feats["quiet_flat_med"] = 0.0
        feats["quiet_flat_std"] = 0.0
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
        feats[f"ev_rate_{t}"] = _log(np.count_nonzero((f.click_ratio >= t) & ok) * f.click_weight / dur, 1e-2)
        feats[f"ev_iso_rate_{t}"] = _log(np.count_nonzero((f.click_ratio >= t) & (f.click_isolation >= 3) & ok)
                                         * f.click_weight / dur, 1e-2)
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
    feats["surf_click_per"] = _num(m["surface_noise"]["click_periodicity"])
    feats["wow_peak_db"] = _num(m["wow"]["peak_db"])
    feats["wow_depth"] = _log(_num(m["wow"]["depth_cents"]) + 0.1, 0.1)
    feats["wow_rate"] = _num(m["wow"]["rate_hz"])
    feats["wow_share"] = _num(m["wow"]["periodicity"])
    feats["wow_drift"] = _log(_num(m["wow"]["drift_cents"]) + 0.1, 0.1)
    feats["wow_usable"] = _num(m["wow"]["usable_fraction"])
    feats["flutter_peak_db"] = _num(m["wow"]["flutter_peak_db"])
    feats["rt60"] = min(_num(m["reverb"]["rt60_s"], 0.0), 5.0)
    feats["drr"] = _num(m["reverb"]["drr_db"], 0.0)
    feats["decays"] = _log(_num(m["reverb"]["decays"]) + 1.0, 1.0)
    feats.update(_decay_rate_features(f))
    feats.update(_wow_long_lag_features(f))
    feats["nz_line_resid_db"] = _noise_line_residual(f)
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
    feats.update(wow_fm_features(f.wow_fm))
    # no channel count and no inter-channel measure: every other feature is of the mono mix,
    # so a mono transfer of a stereo programme reads like the programme (training music is
    # stereo and speech mono: the count told the model "speech", and a mono music excerpt
    # read as reverberant)
    names = list(feats)
    return np.asarray([feats[n] for n in names], dtype=np.float32), names


def wow_fm_features(summary) -> dict[str, float]:
    """The coherent FM of the partial tracks (:class:`archtool.analyze.wow_fm.FMSummary`, or
    None), for the fits with a free offset per track (``wow_fm_*``) and with a free offset
    and slope (``wow_fm1_*``): best explained share, its height over the median across rates
    (log), the fitted depth (log cents) and the rate."""
    from archtool.analyze.wow_fm import fm_measures

    out = {}
    for order, tag in ((0, "wow_fm"), (1, "wow_fm1")):
        fm = fm_measures(summary, order)
        out[f"{tag}_fraction"] = _num(fm["fraction"])
        out[f"{tag}_relative"] = _log(_num(fm["relative"]) + 0.1, 0.1)
        out[f"{tag}_depth"] = _log(_num(fm["depth_cents"]) + 0.1, 0.1)
        out[f"{tag}_rate"] = _num(fm["rate_hz"])
    return out


def _decay_rate_features(f: Features) -> dict[str, float]:
    """Percentiles (in 100 dB/s) and shares of steep falls of the band-level decay rates
    (``Features.slope_hist``: all gated windows, and those starting 40 dB over the floor)."""
    from archtool.analyze.reverb import slope_percentile

    out = {}
    for name, h in (("sl", f.slope_hist), ("slhi", f.slope_hist_hi)):
        n = int(h.sum())
        out[f"{name}_count"] = _log(n + 1.0, 1.0)
        centres = 0.5 * (SLOPE_EDGES[1:] + SLOPE_EDGES[:-1])
        for q in (0.5, 2.0, 5.0, 20.0):
            v = slope_percentile(h, q) if n >= 20 else float("nan")
            out[f"{name}_p{q:g}"] = _num(v, -200.0) / 100.0
        for t in (150, 300, 500):
            out[f"{name}_below_{t}"] = float(h[centres < -t].sum()) / max(n, 1)
    return out


def _wow_long_lag_features(f: Features) -> dict[str, float]:
    """The strongest 0.25-3 Hz line of the pitch-drift track at the longest lag (slow wow
    is ``2 sin(pi rate lag / frame rate)`` times stronger there than at lag 1)."""
    from archtool.analyze.wow import WOW_RANGE_HZ, line

    d = f.wow_drift_cents
    if d.shape[0] == 0:
        return {"wowL_peak_db": 0.0, "wowL_share": 0.0, "wowL_amp": 0.0, "wow_abs_p90": 0.0}
    wl = line(d[:, -1], f.wow_rate, *WOW_RANGE_HZ)
    fin = np.abs(d[:, 0][np.isfinite(d[:, 0])])
    return {"wowL_peak_db": wl["peak_db"], "wowL_share": wl["share"], "wowL_amp": _log(wl["amp"] + 0.1, 0.1),
            "wow_abs_p90": _log(float(np.percentile(fin, 90)) + 0.1 if fin.size else 0.1, 0.1)}


def _noise_line_residual(f: Features) -> float:
    """RMS deviation (dB) of the noise spectrum from a straight line in dB over log
    frequency, 200 Hz .. min(8 kHz, 0.45 x rate): small for white or pink noise, large for
    ambiences with their own spectral shape."""
    sel = (f.freqs >= 200.0) & (f.freqs <= min(8000.0, 0.45 * f.sample_rate))
    if np.count_nonzero(sel) < 8:
        return 0.0
    lf = np.log2(f.freqs[sel])
    # (the smoothed minimum statistics can leave -1e-16 where a band is empty)
    ld = 10 * np.log10(np.maximum(np.asarray(f.noise_psd[sel], dtype=np.float64), 0.0) + 1e-30)
    # third-octave smoothing first, so the estimator's own scatter does not count
    edges = np.arange(lf.min(), lf.max() + 1 / 3, 1 / 3)
    idx = np.clip(np.searchsorted(edges, lf) - 1, 0, max(edges.size - 2, 0))
    cnt = np.bincount(idx)
    ok = cnt > 0
    mx = (np.bincount(idx, lf) / np.maximum(cnt, 1))[ok]
    my = (np.bincount(idx, ld) / np.maximum(cnt, 1))[ok]
    if mx.size < 3:
        return 0.0
    coef = np.polyfit(mx, my, 1)
    return min(float(np.sqrt(np.mean((my - np.polyval(coef, mx)) ** 2))), 40.0)


def build_model(n_in: int, n_out: int = len(KINDS), members: int = 1, hidden: int = HIDDEN):
    """Standardise the features, then ``members`` MLPs (2 hidden layers of ``hidden`` GELU
    units); the logits, one per kind, are the members' mean."""
    import torch
    from torch import nn

    class DetectorNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(n_in))
            self.register_buffer("std", torch.ones(n_in))
            self.nets = nn.ModuleList(
                nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(0.1),
                              nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_out))
                for _ in range(members))

        def forward(self, x):
            z = (x - self.mean) / self.std
            return torch.stack([net(z) for net in self.nets]).mean(0)

    return DetectorNet()


@lru_cache(maxsize=1)
def load_default():
    """``(model, meta)`` from the shipped checkpoint, or None when it is not installed."""
    if not CHECKPOINT.exists():
        return None
    from archtool.models.checkpoint import load_checkpoint

    state, meta = load_checkpoint(CHECKPOINT)
    n_out = len(meta["kinds"]) + (1 if "snr_head" in meta else 0)
    model = build_model(len(meta["feature_names"]), n_out, int(meta.get("members", 1)),
                        int(meta.get("hidden", HIDDEN)))
    try:
        model.load_state_dict(state)
    except RuntimeError:
        import warnings

        warnings.warn(f"{CHECKPOINT}: written by another version of the decision layer; the detectors' "
                      "own thresholds decide (retrain with python -m archtool.analyze.train_detector)")
        return None
    model.eval()
    model.requires_grad_(False)  # inference only; never switch autograd off process-wide
    return model, meta


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_numpy_mirror(checkpoint: Path, model) -> Path:
    """Write ``checkpoint.with_suffix('.npz')``: the same weights as plain arrays, tagged
    with the .pt file's sha256, so inference needs neither torch nor its start-up cost."""
    st = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    out = Path(checkpoint).with_suffix(".npz")
    np.savez(out, pt_sha256=np.array(_sha256(Path(checkpoint))), **{k.replace(".", "/"): v for k, v in st.items()})
    return out


def _weights_from_state(st: dict[str, np.ndarray]):
    members = []
    i = 0
    while any(k.startswith(f"nets.{i}.") for k in st):
        layers = sorted({int(k.split(".")[2]) for k in st if k.startswith(f"nets.{i}.") and k.endswith(".weight")})
        members.append([(st[f"nets.{i}.{j}.weight"], st[f"nets.{i}.{j}.bias"]) for j in layers])
        i += 1
    return st["mean"], st["std"], members


@lru_cache(maxsize=1)
def _numpy_weights():
    """``(mean, std, [[(weight, bias), ...] per member])`` as numpy arrays, from the .npz
    mirror when its checksum matches the .pt, else from the .pt through torch; None when
    no usable checkpoint is installed."""
    npz = CHECKPOINT.with_suffix(".npz")
    if npz.exists() and CHECKPOINT.exists():
        z = np.load(npz, allow_pickle=False)
        if str(z["pt_sha256"]) == _sha256(CHECKPOINT):
            return _weights_from_state({k.replace("/", "."): z[k] for k in z.files if k != "pt_sha256"})
    loaded = load_default()
    if loaded is None:
        return None
    return _weights_from_state({k: v.detach().cpu().numpy() for k, v in loaded[0].state_dict().items()})


@lru_cache(maxsize=1)
def _tree_ensembles():
    """The checkpoint's boosted-tree ensembles (``{kind: TreeEnsemble}``), checked against
    the sha256 its metadata records; None (with a warning) when missing or altered."""
    from archtool.analyze import trees

    info = (_meta() or {}).get("trees") or {}
    path = CHECKPOINT.parent / info.get("file", "")
    if info.get("file") and path.exists() and _sha256(path) == info.get("sha256"):
        ensembles, names = trees.load(path)
        if names == list(_meta()["feature_names"]):
            return ensembles
    import warnings

    warnings.warn(f"{path}: the decision layer's tree models are missing or do not match "
                  f"{CHECKPOINT.with_suffix('.json').name}; the detectors' own thresholds decide")
    return None


@lru_cache(maxsize=1)
def _meta() -> dict | None:
    """The checkpoint's metadata (its .json sidecar), or None when not installed."""
    side = CHECKPOINT.with_suffix(".json")
    if not (CHECKPOINT.exists() and side.exists()):
        return None
    import json

    return json.loads(side.read_text())


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _forward_numpy(weights, x: np.ndarray) -> np.ndarray:
    """The :func:`build_model` network in eval mode (dropout off) on one feature vector."""
    mean, std, members = weights
    z0 = (x - mean) / std
    outs = []
    for layers in members:
        z = z0
        for j, (w, b) in enumerate(layers):
            z = z @ w.T + b
            if j < len(layers) - 1:
                z = _gelu(z)
        outs.append(z)
    return np.mean(outs, axis=0).astype(np.float64)


def predict(vec: np.ndarray, names: list[str]) -> tuple[dict[str, float], float | None] | None:
    """``(P(kind present) per kind, noise SNR estimate in dB or None)`` from the shipped
    model; None (with a warning when stale) when no checkpoint matching these features is
    installed. Probabilities are re-centred so that each kind's tuned threshold maps to 0.5;
    kinds the checkpoint leaves to the detectors (``rule_kinds``) are absent. The SNR
    estimate is given when the model's own P(noise) is at least ``SNR_MIN_PROBABILITY``
    (the SNR output was trained on clips with broadband noise only; below that the
    detector's figure is the better one)."""
    meta = _meta()
    if meta is None:
        return None
    want = list(meta["feature_names"])
    if want != list(names):
        # a checkpoint reads its features by name: one trained on fewer features still applies
        pos = {n: i for i, n in enumerate(names)}
        if not all(n in pos for n in want):
            import warnings

            warnings.warn(f"{CHECKPOINT}: its features differ from this version's; the detectors' own "
                          "thresholds decide (retrain with python -m archtool.analyze.train_detector)")
            return None
        vec = np.asarray(vec)[[pos[n] for n in want]]
    weights = _numpy_weights()
    if weights is None:
        return None
    vec = np.nan_to_num(np.asarray(vec, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)  # as in training
    out = _forward_numpy(weights, vec)
    kinds = meta["kinds"]
    th = meta.get("thresholds", {})
    probs = 1.0 / (1.0 + np.exp(-out[: len(kinds)]))
    combine = (meta.get("trees") or {}).get("combine", {})
    if combine:
        ensembles = _tree_ensembles()
        if ensembles is None:
            return None
        for j, k in enumerate(kinds):
            how = combine.get(k, "mlp")
            if how != "mlp":
                p_tree = float(ensembles[k].proba(vec[None])[0])
                probs[j] = p_tree if how == "trees" else 0.5 * (probs[j] + p_tree)
    res = {}
    for k, p in zip(kinds, probs):
        if k in meta.get("rule_kinds", ()):
            continue
        t = float(th.get(k, 0.5))
        res[k] = float(0.5 * p / t) if p < t else float(0.5 + 0.5 * (p - t) / max(1 - t, 1e-9))
    snr = None
    p_noise = float(probs[list(kinds).index("noise")]) if "noise" in kinds else 1.0
    if meta.get("snr_head") and out.size > len(kinds) and p_noise >= SNR_MIN_PROBABILITY:
        snr = float(out[len(kinds)] * SNR_SCALE_DB + SNR_CENTRE_DB)
    return res, snr


def probabilities(vec: np.ndarray, names: list[str]) -> dict[str, float] | None:
    """P(kind present) per kind (see :func:`predict`)."""
    got = predict(vec, names)
    return None if got is None else got[0]


def rule_certain(kind: str, fd: Finding) -> bool:
    """True when a detector's positive verdict rests on an exact measurement that the
    learned layer must not overrule: a deep, steep spectral edge well below Nyquist
    (brick-wall band limit), or many flat-topped runs at the extremes (hard clipping)."""
    if not fd.detected:
        return False
    m = fd.measures
    if kind == "bandlimit":
        return _num(m.get("edge_db")) >= CERTAIN_EDGE_DB and _num(m.get("ratio"), 1.0) <= 0.8
    if kind == "clipping":
        return _num(m.get("flat_runs")) >= CERTAIN_CLIP_RUNS and _num(m.get("clipped_fraction")) >= 1e-3
    return False


def clipping_evidence(fd: Finding) -> bool:
    """Whether the measures could show clipping at all: hard clipping leaves flat runs at
    the extremes (at least ``CLIP_MIN_RUNS``), soft clipping piles samples up near the peak
    (at least ``CLIP_MIN_NEAR_PEAK`` of them within 5 %). On the training and validation
    corpora (2900 clips) 1 of 429 clipped clips had neither, and no unclipped clip with at
    most one flat run had more than 2.2e-4 near the peak; a single flat run (a recording
    whose loudest sample repeats once) is no evidence."""
    m = fd.measures
    return _num(m.get("flat_runs")) >= CLIP_MIN_RUNS or _num(m.get("near_peak_fraction")) >= CLIP_MIN_NEAR_PEAK


def reverb_evidence(fd: Finding) -> bool:
    """Whether the measured decay allows reverberation worth reporting: no RT60 measured
    (dense programme: the decision rests on the decay-rate distribution), or one of at least
    ``REVERB_MIN_RT60_S``. On the validation corpora (1050 clips, 141 reverberant) no
    reverberant clip measured less than that, while 536 others did (a dry room or close
    microphones; a dry solo trumpet measures 0.21 s)."""
    rt = fd.measures.get("rt60_s")
    return rt is None or not math.isfinite(float(rt)) or float(rt) >= REVERB_MIN_RT60_S


REVERB_MIN_RT60_S = 0.25
CLIP_MIN_RUNS = 2
CLIP_MIN_NEAR_PEAK = 1e-3
CERTAIN_EDGE_DB = 30.0
CERTAIN_CLIP_RUNS = 20


def apply(found: dict[str, Finding], probs: dict[str, float], snr_db: float | None = None) -> None:
    """Set ``detected``/``confidence`` from ``probs`` (in place), keeping measures.

    Kinds in ``RULE_KINDS``, findings for which :func:`rule_certain` holds and a band-limit
    finding whose edge was set aside as a line spectrum keep the detector's verdict (the
    probability is still recorded). When ``snr_db`` (the learned
    estimate of the broadband noise's SNR, given by :func:`predict` when the model finds
    noise at least faintly likely) is given, it becomes the noise finding's
    ``measures["snr_db"]``, detected or not; the detector's own figure stays as
    ``snr_db_detector``. A detected finding's severity follows it."""
    for k, fd in found.items():
        if k in RULE_KINDS or k not in probs:
            continue
        p = probs[k]
        fd.measures["rule_detected"] = bool(fd.detected)
        fd.measures["probability"] = round(p, 4)
        if rule_certain(k, fd):
            if p >= 0.5:
                fd.confidence = max(fd.confidence, float(abs(p - 0.5) * 2.0) * 0.5 + 0.5)
            continue
        if k == "bandlimit" and fd.measures.get("line_spectrum"):
            # a tonal spectrum ending at its last partial lies outside the training corpora
            # (programme material); the detector's "no band limit" stands
            continue
        fd.detected = bool(p >= 0.5)
        if k == "clipping" and fd.detected and not clipping_evidence(fd):
            fd.detected = False
            fd.measures["vetoed"] = "no flat runs or near-peak pile-up to show for it"
            p = 0.5 - 1e-6
        if k == "reverb" and fd.detected and not reverb_evidence(fd):
            fd.detected = False
            fd.measures["vetoed"] = f"measured RT60 under {REVERB_MIN_RT60_S} s: a dry room"
            p = 0.5 - 1e-6
        fd.confidence = float(abs(p - 0.5) * 2.0) * 0.5 + 0.5
        if fd.detected and fd.severity <= 0.0:
            fd.severity = 0.05
        if not fd.detected:
            fd.severity = 0.0
    nz = found.get("noise")
    if nz is not None and snr_db is not None and math.isfinite(snr_db):
        from archtool.analyze.noise import SNR_THRESHOLD_DB

        nz.measures["snr_db_detector"] = nz.measures.get("snr_db")
        nz.measures["snr_db"] = round(float(snr_db), 2)
        if nz.detected:
            nz.severity = max(ramp(snr_db, SNR_THRESHOLD_DB + 5.0, 0.0), 0.05)
